"""Time against the number of queries (issue 39): the default call at 1, 10, 100 and 1000 random
queries of its own stride-4 grid and on the whole grid, for ``bench/latency.py`` (method
``queries``). With the caller's queries the pyramid's coarse levels match only the cells those
queries need (``mind_engine.engine.pruning``), so a handful of queries costs a fraction of the
dense call; each row says how many queries each level matched,
where the time went (a second, instrumented run: ``bench/c2f_profile.py``) and how the matches
agree with the dense run's at the same queries (the first of ``--finest-levels``' dense rows,
finest level 0 by default, this run). ``finest_level`` 1 rows time the lever of issue 38 (what
``finest_level="auto"`` picks before the default ``refine="dis"``: the call users get) on the same
queries, against the same reference. Each row splits its time into the refinement stage
(``refinement_ms``: ``mind_engine.refinement.apply``, OpenCV on the CPU whatever the device, timed
inside the same calls) and the rest (``mind_ms``: MIND, on the device).
"""
from __future__ import annotations

import contextlib
import statistics
import sys
import time

import numpy as np
import torch

from bench.c2f_profile import profile_c2f
from bench.testbed import match_agreement
from mind_engine import Engine, match
from mind_engine.defaults import LEVELS, RADIUS, STRIDE
from mind_engine.engine.matching import grid_queries

QUERY_COUNTS = (1, 10, 100, 1000)  # random queries of the default grid (seed 0); then the grid itself


def query_sets(hw: tuple[int, int]) -> dict:
    """Name -> (N, 2) queries (None: the dense grid, ``match``'s default), for an (h, w) pair."""
    grid = grid_queries(hw, STRIDE)
    rng = np.random.default_rng(0)
    sets = {"dense": None}
    for n in (n for n in QUERY_COUNTS if n < len(grid)):
        sets[str(n)] = grid[np.sort(rng.choice(len(grid), n, replace=False))]
    return sets


@contextlib.contextmanager
def timed_refinement():
    """A list that collects the wall time of each ``mind_engine.refinement.apply`` call made in the
    block (the device synchronised first, so queued MIND work is not counted as refinement)."""
    from mind_engine import refinement

    apply, seconds = refinement.apply, []

    def timed(*args, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            return apply(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    refinement.apply = timed
    try:
        yield seconds
    finally:
        refinement.apply = apply


def time_query_counts(args, device, clock, model, spec: str, i1, i3) -> list[dict]:
    """One row per finest level and query set: ``match`` with its defaults (stride 4, radius 32,
    levels "auto") end to end, the median of ``args.repeats`` runs (after ``args.warmup``)."""
    hw = tuple(i1.shape[-2:])
    grid = grid_queries(hw, STRIDE)
    rows, dense = [], None
    for finest in args.finest_levels:
        for name, q in query_sets(hw).items():
            times, refining = [], []
            for rep in range(args.warmup + args.repeats):
                with timed_refinement() as seconds:
                    m, t = clock(lambda: match(i1[0], i3[0], model=model, device=device, queries=q, finest_level=finest))
                if rep >= args.warmup:
                    times.append(t)
                    refining.append(sum(seconds))
            if dense is None:  # the first finest level's dense grid (0 by default): the reference of every row
                dense = m
            pick = np.arange(len(grid)) if q is None else (grid[:, None] == q[None]).all(-1).any(1).nonzero()[:, 0].numpy()
            prof = profile_c2f(Engine(i1[0], i3[0], model=model, device=device), STRIDE, RADIUS, LEVELS,
                               queries=q, finest_level=finest)
            total, refine = statistics.median(times), statistics.median(refining)
            rows.append({"model": spec, "method": "queries", "label": f"match() at {name} queries, finest level {finest}",
                         "job": f"n={name}", "finest_level": finest, "stride": STRIDE, "radius": RADIUS, "queries": len(m),
                         "queries_timed": len(m), "extrapolated": False, "total_ms": 1e3 * total,
                         "runs_ms": [1e3 * t for t in times], "refinement_ms": 1e3 * refine,
                         "mind_ms": 1e3 * (total - refine), "per_query_ms": 1e3 * total / len(m),
                         "queries_per_s": len(m) / total, "peak_memory_bytes": 0,
                         "level_queries": {lv["level"]: lv["queries"] for lv in prof["levels"]},
                         "profile": prof, "agreement_vs_dense": match_agreement(dense[pick], m)})
            print(f"  {spec} queries {name:>5s} finest {finest}: {total:7.2f} s (refinement {refine:.2f} s)",
                  file=sys.stderr)
    for r in rows:
        r["ratio_to_dense"] = r["total_ms"] / next(d["total_ms"] for d in rows if d["job"] == "n=dense"
                                                   and d["finest_level"] == r["finest_level"])
    return rows


def print_query_counts(rows: list[dict]) -> None:
    """The time-against-queries table of ``time_query_counts``' rows."""
    if not rows:
        return
    print(f"\nmatch() with its defaults (stride {STRIDE}, radius {RADIUS}, levels {LEVELS}) at n queries:")
    print(f"{'model':8s} {'finest':>6s} {'queries':>7s} {'total s':>8s} {'refine s':>8s} {'x dense':>7s} "
          f"{'per level (coarsest first)':>28s} "
          f"{'same as dense':>13s} {'within 1 px':>11s}")
    for r in rows:
        per_level = " / ".join(str(r["level_queries"][k]) for k in sorted(r["level_queries"], key=int, reverse=True))
        a = r["agreement_vs_dense"]
        print(f"{r['model'][:8]:8s} {r['finest_level']:6d} {r['queries']:7d} {r['total_ms'] / 1e3:8.2f} "
              f"{r['refinement_ms'] / 1e3:8.2f} "
              f"{r['ratio_to_dense']:7.2f} {per_level:>28s} {a['same_point']:13.1%} {a['within_1px']:11.1%}")
