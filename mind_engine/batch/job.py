"""``match_many``: match many pairs into an output folder, in this process or on Ray, resumably."""
from __future__ import annotations

import json
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from .pairs import Pair, as_pairs, read_pair_list
from .spec import ModelSpec, Settings, fingerprint
from .store import FORMAT, Manifest, finished, write_result
from .work import Outcome

BACKENDS = ("local", "ray")


class Sink:
    """Where outcomes go, in the driver: result files, the manifest, the bar, the callback.
    Thread-safe (the local backend reports resumed pairs from its decoding thread)."""

    def __init__(self, out_dir: Path, fp: str, manifest: Manifest, bar, callback: Callable | None):
        self.out_dir, self.fp, self.manifest, self.bar, self.callback = out_dir, fp, manifest, bar, callback
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.failed = 0

    def _record(self, rec: dict) -> None:
        with self.lock:
            if rec["key"] in self.seen:
                raise ValueError(f"pair key {rec['key']!r} occurs twice in the job; keys name result files "
                                 f"and must be unique")
            self.seen.add(rec["key"])
            self.manifest.add(rec)
            self.bar.update(1)
            self.failed += rec["status"] == "failed"
            self.bar.set_postfix(failed=self.failed, refresh=False)
        if self.callback is not None:
            self.callback(rec)

    def pending(self, pairs: Iterable[Pair]):
        """The pairs not finished by an earlier run with this fingerprint; those are recorded as
        ``ok`` and ``resumed``."""
        for p in pairs:
            meta = finished(self.out_dir, p.key, p.name1, p.name3, self.fp)
            if meta is None:
                yield p
                continue
            self._record({"key": p.key, "img1": p.name1, "img3": p.name3, "status": "ok", "resumed": True,
                          "file": f"{p.key}.npz", "n_matches": meta["n_matches"], "width": meta["width"],
                          "height": meta["height"], "seconds_load": meta["seconds_load"],
                          "seconds_match": meta["seconds_match"]})

    def done(self, o: Outcome, attempts: int = 1) -> None:
        rec = {"key": o.key, "img1": o.name1, "img3": o.name3, "status": o.status, "worker": o.worker,
               "attempts": attempts, "seconds_load": round(o.seconds_load, 6),
               "seconds_match": round(o.seconds_match, 6)}
        if o.status == "ok":
            write_result(self.out_dir, o.key, o.arrays,
                         {"key": o.key, "img1": o.name1, "img3": o.name3, "fingerprint": self.fp,
                          "width": o.width, "height": o.height, "seconds_load": o.seconds_load,
                          "seconds_match": o.seconds_match})
            rec.update(file=f"{o.key}.npz", n_matches=len(o.arrays["score"]), width=o.width, height=o.height)
        else:
            rec["error"] = o.error
        self._record(rec)


def versions(backend: str) -> dict:
    from .. import __version__

    v = {"mind_engine": __version__, "torch": torch.__version__, "numpy": np.__version__,
         "python": platform.python_version(), "platform": platform.platform()}
    if backend == "ray":
        import ray

        v["ray"] = ray.__version__
    return v


def match_many(pairs, out_dir, stride: int = 4, radius: int | None = None, queries=None, tier: str = "auto",
               model=None, weights=None, device=None, memory: int | None = None, backend: str = "local",
               workers: int | None = None, threads: int | None = None, ray_address: str | None = None,
               retries: int = 2, progress: bool | None = None, callback: Callable | None = None,
               total: int | None = None) -> dict:
    """Match every pair into ``out_dir`` (``<key>.npz`` per pair and ``manifest.json``, see
    ``mind_engine.batch.store``); returns the manifest.

    ``pairs``: (img1, img3) tuples of paths or arrays, ``Pair`` objects, or the path of a pair
    list (``read_pair_list``). The matching arguments are ``mind_engine.match``'s; ``model`` (a
    MindNet) or ``weights`` (a checkpoint path) default to the bundled model. ``backend``: "local"
    (this process, one worker, decoding the next pair while matching this one) or "ray"
    (``workers`` actors, on the Ray cluster at ``ray_address``, or a local one); ``threads``:
    torch CPU threads per worker. A pair whose result exists with the same model and settings is
    skipped (resume); a bad pair is recorded as failed with its error and the job goes on; on Ray
    a pair whose worker died is retried on a new worker up to ``retries`` times. ``callback`` is
    called in this process with each pair's manifest record as it is stored.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "local" and workers not in (None, 1):
        raise ValueError(f"backend='local' runs one worker in this process; workers={workers} needs backend='ray'")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    settings = Settings.make(stride, radius, queries, tier, memory)
    spec = ModelSpec.from_args(model, weights)
    if isinstance(pairs, (str, Path)):
        pairs = read_pair_list(pairs)
    if total is None and hasattr(pairs, "__len__"):
        total = len(pairs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(spec, settings)
    header = {"format": FORMAT, "fingerprint": fp, "settings": settings.to_dict(),
              "model": {"sha256": spec.sha256, "source": spec.source, "config": spec.config},
              "versions": versions(backend), "backend": backend, "device": device, "workers": workers,
              "threads": threads, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv}
    manifest = Manifest(out_dir, header)
    manifest.write("running")
    t0 = time.perf_counter()
    with tqdm(total=total, desc="matching pairs", unit="pair", disable=None if progress is None else not progress,
              dynamic_ncols=True) as bar:
        sink = Sink(out_dir, fp, manifest, bar, callback)
        pending = sink.pending(as_pairs(pairs))
        if backend == "local":
            from .local import run_local

            run_local(pending, sink, spec, settings, device, threads)
        else:
            from .ray_runner import run_ray

            header.update(run_ray(pending, sink, spec, settings, device, workers, threads, ray_address, retries))
    header["seconds"] = round(time.perf_counter() - t0, 3)
    manifest.write("finished")
    return json.loads(manifest.path.read_text())
