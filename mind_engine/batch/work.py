"""One worker's job: load the model once, then decode and match pair after pair.

Decoding (``load``) and matching (``match``) are separate steps so that a backend can decode the
next pair while this one is matched. A bad pair (missing file, unreadable image, sizes that
differ, a malformed list row) or any error while matching it becomes a ``failed`` outcome with
the error's text; it never stops the worker.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..checks import check_device
from ..api import Engine
from .pairs import Pair
from .spec import ModelSpec, Settings
from .store import ARRAYS


@dataclass
class Outcome:
    """What became of one pair: ``arrays`` (the Matches columns) when ``status == "ok"``,
    ``error`` when ``"failed"``; the image size and the seconds spent decoding and matching."""

    key: str
    name1: str
    name3: str
    status: str
    worker: str
    arrays: dict = field(default_factory=dict)
    error: str | None = None
    width: int = 0
    height: int = 0
    seconds_load: float = 0.0
    seconds_match: float = 0.0


class Loaded:
    """A decoded pair, or the error decoding it raised."""

    def __init__(self, pair: Pair):
        self.pair = pair
        t = time.perf_counter()
        try:
            self.images, self.error = pair.load(), None
        except Exception as e:  # every decoding problem is this pair's, reported with it
            self.images, self.error = None, f"{type(e).__name__}: {e}"
        self.seconds = time.perf_counter() - t


class Matcher:
    """The model (built once from ``spec`` on ``device``) and the settings, matching pairs.
    ``threads`` sets torch's CPU thread count for this process (None: leave it); both are checked
    by ``match_many``."""

    def __init__(self, spec: ModelSpec, settings: Settings, device=None, threads: int | None = None,
                 name: str = "local"):
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = check_device(device)
        self.model = spec.build(self.device)
        self.settings, self.name = settings, name

    def match(self, loaded: Loaded) -> Outcome:
        p, s = loaded.pair, self.settings
        out = Outcome(p.key, p.name1, p.name3, "failed", self.name, seconds_load=loaded.seconds)
        if loaded.error is not None:
            out.error = loaded.error
            return out
        t1, t3 = loaded.images
        out.height, out.width = (int(v) for v in t1.shape[-2:])
        t = time.perf_counter()
        try:
            engine = Engine(t1, t3, model=self.model, device=self.device, tier=s.tier, memory=s.memory)
            m = engine.match(s.queries, s.stride, s.radius, progress=False, levels=s.levels, refine=s.refine)
        except Exception as e:  # a pair the engine rejects (too small, bad queries...) fails alone
            out.error = f"{type(e).__name__}: {e}"
            return out
        finally:
            out.seconds_match = time.perf_counter() - t
        out.status = "ok"
        out.arrays = {k: getattr(m, k) for k in ARRAYS}
        return out
