"""The Ray backend: actors that each build the model once and take pairs from the driver's queue.

One actor per GPU (``num_gpus=1``) where the cluster has GPUs; otherwise CPU actors that each
reserve as many CPUs as the torch threads they run (``num_cpus=threads``), so Ray never packs
more threads onto a node than it has cores. Each actor holds two pairs at a time and runs two
calls at once (``max_concurrency=2``): one decodes its pair while the other matches (a lock lets
one match at a time). Results come back to the driver, which alone writes files, so a pair is
stored once. A dead actor is replaced and its pairs retried, each at most ``retries`` more
times, then recorded as failed with the error.
"""
from __future__ import annotations

import threading
import uuid
from collections import deque

import ray

from .work import Loaded, Matcher, Outcome

IN_FLIGHT = 2  # pairs held by one actor: one matching, one decoding


class _Worker:
    def __init__(self, spec, settings, device, threads, name):
        self.matcher = Matcher(spec, settings, device, threads, name=name)
        self.lock = threading.Lock()

    def ready(self) -> str:
        return self.matcher.name

    def process(self, pair) -> Outcome:
        loaded = Loaded(pair)  # outside the lock: overlaps the other call's matching
        with self.lock:
            return self.matcher.match(loaded)


Worker = ray.remote(_Worker)


def plan(resources: dict, device, workers: int | None, threads: int | None) -> dict:
    """How many actors, with how many threads and GPUs each, for the cluster's ``resources``."""
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    want_gpu = device is None or str(device).startswith("cuda")
    if device is not None and str(device).startswith("cuda") and gpus == 0:
        raise ValueError(f"device={device!r} but the Ray cluster has no GPU")
    if want_gpu and gpus > 0:
        n = workers or gpus
        if n > gpus:
            raise ValueError(f"workers={n} but the Ray cluster has {gpus} GPUs (one actor per GPU)")
        return {"workers": n, "threads": threads, "num_gpus": 1, "num_cpus": 1, "device": "cuda"}
    t = threads or (max(1, cpus // workers) if workers else 1)
    n = workers or max(1, cpus // t)
    if n * t > cpus:
        raise ValueError(f"workers={n} x threads={t} exceeds the Ray cluster's {cpus} CPUs; ask for fewer")
    return {"workers": n, "threads": t, "num_gpus": 0, "num_cpus": t, "device": "cpu"}


def run_ray(pending, sink, spec, settings, device=None, workers=None, threads=None, address=None,
            retries: int = 2) -> dict:
    """Match every pending pair on Ray, reporting outcomes to ``sink``; returns what ran."""
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, **({} if address else {"include_dashboard": False}))
    actors: dict[str, object] = {}
    try:
        p = plan(ray.cluster_resources(), device, workers, threads)
        spec_ref, job = ray.put(spec), uuid.uuid4().hex[:8]
        count = iter(range(1 << 30))

        def new_actor():
            name = f"mind_engine_batch_{job}_{next(count)}"
            actors[name] = Worker.options(name=name, num_cpus=p["num_cpus"], num_gpus=p["num_gpus"],
                                          max_concurrency=IN_FLIGHT, max_restarts=0).remote(
                spec_ref, settings, p["device"], p["threads"], name)
            return name

        for _ in range(p["workers"]):
            new_actor()
        ray.get([a.ready.remote() for a in actors.values()])  # a model that cannot load fails here, once

        it, retry = iter(pending), deque()
        inflight: dict = {}  # ref -> (actor name, pair, attempt)
        load = {name: 0 for name in actors}
        replaced = 0

        def feed():
            for name, actor in actors.items():
                while load[name] < IN_FLIGHT:
                    job_ = retry.popleft() if retry else next(((q, 1) for q in it), None)
                    if job_ is None:
                        return
                    inflight[actor.process.remote(job_[0])] = (name, *job_)
                    load[name] += 1

        feed()
        while inflight:
            ref = ray.wait(list(inflight), num_returns=1)[0][0]
            name, pair, attempt = inflight.pop(ref)
            load[name] = load.get(name, 1) - 1
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                if name in actors:  # the first of its pairs to report the death replaces it
                    del actors[name]
                    load[new_actor()] = 0
                    replaced += 1
                if attempt > retries:
                    sink.done(Outcome(pair.key, pair.name1, pair.name3, "failed", name,
                                      error=f"worker died on each of {attempt} attempts; last: {e}"), attempt)
                else:
                    retry.append((pair, attempt + 1))
            except ray.exceptions.RayTaskError as e:  # not a pair's error (those are outcomes): Ray's own
                sink.done(Outcome(pair.key, pair.name1, pair.name3, "failed", name, error=str(e)), attempt)
            else:
                sink.done(outcome, attempt)
            feed()
        return {"ray": {"address": address, **p, "workers_replaced": replaced}}
    finally:
        for a in actors.values():
            ray.kill(a)
        if started:
            ray.shutdown()
