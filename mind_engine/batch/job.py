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

from ..checks import check_choice, check_device, check_flag, check_folder, check_integer, check_threads
from ..defaults import LEVELS, RADIUS, REFINE, STRIDE
from ..progress import progress as progress_bar
from .lock import FolderLock
from .pairs import Pair, as_pairs, read_pair_list
from .resume import claim
from .signals import Terminated, terminate_raises
from .spec import ModelSpec, Settings, fingerprint
from .store import FORMAT, Manifest, finished, stored_record, write_result
from .work import Outcome

BACKENDS = ("local", "ray")


class Sink:
    """Where outcomes go, in the driver: result files, the manifest, the bar, the callback.
    Thread-safe (the local backend reports resumed pairs from its decoding thread)."""

    def __init__(self, out_dir: Path, fp: str, manifest: Manifest, bar, callback: Callable | None):
        self.out_dir, self.fp, self.manifest, self.bar, self.callback = out_dir, fp, manifest, bar, callback
        self.lock = threading.Lock()
        self.failed = 0

    def _record(self, rec: dict) -> None:
        with self.lock:
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
            else:
                self._record(stored_record(meta, resumed=True))

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
    from ..version import __version__

    v = {"mind_engine": __version__, "torch": torch.__version__, "numpy": np.__version__,
         "python": platform.python_version(), "platform": platform.platform()}
    if backend == "ray":
        import ray

        v["ray"] = ray.__version__
    return v


def _run_backend(backend, pending, sink, spec, settings, device, workers, threads, ray_address, retries) -> dict:
    """Match the ``pending`` pairs into ``sink`` on ``backend``; returns what it adds to the manifest's header."""
    if backend == "local":
        from .local import run_local

        run_local(pending, sink, spec, settings, device, threads)
        return {}
    from .ray_runner import run_ray

    return run_ray(pending, sink, spec, settings, device, workers, threads, ray_address, retries)


def match_many(pairs, out_dir, stride: int = STRIDE, radius: int | None = RADIUS, queries=None, tier: str = "auto",
               levels: int | str = LEVELS, refine: str = REFINE, model=None, weights=None, device=None,
               memory: int | None = None, backend: str = "local",
               workers: int | None = None, threads: int | None = None, ray_address: str | None = None,
               retries: int = 2, progress: bool | None = None, callback: Callable | None = None,
               total: int | None = None, restart: bool = False) -> dict:
    """Match every pair into ``out_dir`` (``<key>.npz`` per pair and ``manifest.json``, see
    ``mind_engine.batch.store``); returns the manifest.

    ``pairs``: (img1, img3) tuples of paths or arrays, ``Pair`` objects, or the path of a pair
    list (``read_pair_list``). The matching arguments and defaults are ``mind_engine.match``'s;
    ``model`` (a MindNet, a path or "default") or ``weights`` (a path) default to the bundled
    model. ``backend``: "local" (this process, one worker, decoding the next pair while matching
    this one) or "ray" (``workers`` actors, on the Ray cluster at ``ray_address``, or a local
    one); ``threads``: torch CPU threads per worker. A pair whose result exists with the same
    model and settings is skipped (resume; a folder of other settings is refused, see below); a bad pair is recorded as failed with its error and the job
    goes on; on Ray a pair whose worker died is retried on a new worker up to ``retries`` times.
    ``callback`` is called in this process with each pair's manifest record as it is stored.

    A folder of an earlier job's files is continued only when they prove to be this job's, else
    refused in one line (``mind_engine.batch.resume``); ``restart=True`` moves them aside first.

    Every argument, and every pair key of a list, is checked before any work. The job holds
    ``out_dir``'s lock (``mind_engine.batch.lock``) from start to end: a second job on the folder
    is refused at once (``FolderBusyError``, naming the holder). The manifest always agrees with
    the result files: its ``state`` ends ``finished``; on Ctrl-C or SIGTERM ``interrupted``, then
    KeyboardInterrupt or ``Terminated`` is raised on; on an error ``aborted``, with the error; a
    job killed without a word (SIGKILL) leaves ``running``, which the next job on the folder
    repairs to ``interrupted`` before it starts.
    """
    backend = check_choice(backend, "backend", BACKENDS)
    workers = check_integer(workers, "workers", 1, none=True)
    if backend == "local" and workers not in (None, 1):
        raise ValueError(f"backend='local' runs one worker in this process; workers={workers} needs backend='ray'")
    threads = None if threads is None else check_threads(threads)
    retries = check_integer(retries, "retries", 0)
    total = check_integer(total, "total", 0, none=True)
    restart = check_flag(restart, "restart")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function of one manifest record, or None; got {callback!r}")
    here = check_device(device, here=backend == "local")  # a Ray job's device is its workers'
    device = None if device is None else str(here)
    settings = Settings.make(stride, radius, queries, tier, memory, here if backend == "local" else None, levels,
                             refine)
    spec = ModelSpec.from_args(model, weights)
    if isinstance(pairs, (str, Path)):
        pairs = read_pair_list(pairs)
    if hasattr(pairs, "__len__"):
        pairs = list(as_pairs(pairs))  # every key checked now
        total = len(pairs) if total is None else total
    else:
        pairs = as_pairs(pairs)  # a stream: each key checked as it comes, before its pair is matched
    out_dir = check_folder(out_dir, "out_dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(spec, settings)
    header = {"format": FORMAT, "fingerprint": fp, "settings": settings.to_dict(),
              "model": {"sha256": spec.sha256, "source": spec.source, "config": spec.config},
              "versions": versions(backend), "backend": backend, "device": device, "workers": workers,
              "threads": threads, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv}
    with FolderLock(out_dir), terminate_raises():
        header.update(claim(out_dir, header, restart))
        manifest = Manifest(out_dir, header)
        manifest.write("running")
        t0, state = time.perf_counter(), "interrupted"
        try:
            with progress_bar(total=total, desc="matching pairs", unit="pair", show=progress) as bar:
                sink = Sink(out_dir, fp, manifest, bar, callback)
                header.update(_run_backend(backend, sink.pending(pairs), sink, spec, settings, device, workers,
                                           threads, ray_address, retries))
            state = "finished"
        except BaseException as e:
            if not isinstance(e, (KeyboardInterrupt, Terminated)):
                state, header["error"] = "aborted", f"{type(e).__name__}: {e}"
            raise
        finally:
            header["seconds"] = round(time.perf_counter() - t0, 3)
            if state != "finished":
                manifest.reconcile()
            manifest.write(state)
    return json.loads(manifest.path.read_text())

