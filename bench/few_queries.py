"""Accuracy of the default call at a few queries: ``match(queries=...)`` against the dense default
call ``match()`` read at the same points.

    python bench/few_queries.py [--weights PATH] [--counts 1 10 100 1000] [--pool 200] [--draw-seed 0]
                                [--threads N] [bench/accuracy.py's dataset options]

With the caller's queries the pyramid's coarse levels match only the cells those queries need
(``mind_engine.engine.pruning``), and the refinement (``refine="dis"``: DIS started from a field
densified from the matches it refines, ``mind_engine.refinement.dis``) is seeded by those few
matches only, where the dense call's seed holds the whole grid's. This measures what that costs.

On the held-out pairs of bench/accuracy.py (``datasets``; its defaults: 3 synthetic and 3 layered
384x128 pairs, the motorcycle 256 px wide), for each n of ``--counts``, query sets of n points are
drawn at random (``--draw-seed``) from a pair's stride-4 grid points that have ground truth, the
draws going round the dataset's pairs, until ``--pool`` points are drawn (n=1: 200 draws; n=1000:
one). Each set is matched by the default call with those queries (``few``) and read from the
dense default call of its pair at the same points (``dense``), for ``refine="dis"`` (the default)
and ``"lk"``; both are judged as bench/accuracy.py judges (``metrics.evaluate``, keep 1.0: every
match with ground truth at its p1), APE and Acc@1/2/10 pooled over the draws, with the seconds
per call (the readout, shared by the two methods, plus the method's refinement) and the share of
points whose frame-3 end lies within 0.5 px of the dense call's.

Rule, fixed before the first run: the few-query call is fine when, for each refine method, dataset
and n, its Acc@2 is at least the dense call's at the same points less ``MARGIN`` (0.01); otherwise
the library is changed until it is, choosing between candidate fixes by these same numbers. The
verdict is printed and written with the JSON (bench/results/few_queries_<device>.json, or --out).

Cost: the defaults run about 700 calls, 17 minutes on a busy 2-core machine (a call with a few
queries prunes the coarse levels; with pruning set aside, which an earlier version of the library
did at level 1, it took about 35 minutes there).
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.accuracy import DATASET_RULES, add_dataset_args, datasets  # noqa: E402
from bench.report import add_output_args, check_args, output_path, publish, weights_rule  # noqa: E402
from mind_engine import Engine  # noqa: E402
from mind_engine import weights as W  # noqa: E402
from mind_engine.checks import check_integer, check_threads  # noqa: E402
from mind_engine.defaults import STRIDE  # noqa: E402
from mind_engine.engine.matching import grid_queries  # noqa: E402
from mind_engine.evaluation.baselines import Correspondences  # noqa: E402
from mind_engine.evaluation.metrics import evaluate  # noqa: E402

METHODS = ("dis", "lk")  # the default refinement and the other photometric one
COUNTS = (1, 10, 100, 1000)
THRESHOLDS = (1, 2, 10)
MARGIN = 0.01  # the rule: few-query Acc@2 >= dense Acc@2 - MARGIN, for every method, dataset and n
SAME_PX = 0.5  # a frame-3 end this close to the dense call's counts as the same


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="checkpoint (default: the bundled default model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--counts", type=int, nargs="+", default=list(COUNTS), help="query counts n (default 1 10 100 1000)")
    p.add_argument("--pool", type=int, default=200, help="points drawn per n and dataset, at least (default 200)")
    p.add_argument("--draw-seed", type=int, default=0, help="seed of the random query draws (default 0)")
    add_dataset_args(p)
    p.add_argument("--threads", type=int, default=None)
    add_output_args(p, "few_queries_<device>.json")
    return p


def default_calls(engine: Engine, queries) -> dict:
    """method -> (``engine.match(queries, refine=method)``, seconds): the readout once per finest
    level the methods resolve to (``Engine.finest_level``), then each method's refinement."""
    out, readouts = {}, {}
    for method in METHODS:
        finest = engine.finest_level(method)
        if finest not in readouts:
            t = time.perf_counter()
            readouts[finest] = engine.match(queries, refine="none", finest_level=finest), time.perf_counter() - t
        raw, seconds = readouts[finest]
        t = time.perf_counter()
        out[method] = engine.refined(raw, method), seconds + time.perf_counter() - t
    return out


def draws(pairs, n: int, pool: int, rng) -> list[tuple[int, np.ndarray]]:
    """(pair index, grid indices) of ``ceil(pool / n)`` query sets of n stride-4 grid points with
    ground truth (fewer where a pair has fewer), round the pairs."""
    out = []
    for i in range(math.ceil(pool / n)):
        j = i % len(pairs)
        grid = grid_queries(pairs[j].img1.shape[:2], STRIDE).numpy()
        have = np.flatnonzero(pairs[j].valid[grid[:, 1], grid[:, 0]])
        out.append((j, np.sort(rng.choice(have, min(n, len(have)), replace=False))))
    return out


def judge(entries: list, seconds: dict) -> dict:
    """One (dataset, n, method): few and dense pooled over the draws' ``entries`` (flow, valid, few
    Matches, dense Matches at the same queries)."""
    per_pair = [(flow, valid, {k: Correspondences.from_matches(m, k, ~m.consistent) for k, m in (("few", f), ("dense", d))})
                for flow, valid, f, d in entries]
    res = evaluate(per_pair, 1.0, THRESHOLDS)
    same = np.concatenate([np.linalg.norm(f.pts3 - d.pts3, axis=1) <= SAME_PX for _, _, f, d in entries])
    return {"few": {k: v for k, v in res["few"].items() if k != "K_per_pair"},
            "dense": {k: v for k, v in res["dense"].items() if k != "K_per_pair"},
            "points": int(sum(len(f) for _, _, f, _ in entries)), "draws": len(entries),
            "same_end_as_dense": float(same.mean()), "seconds_per_call": {k: float(np.mean(v)) for k, v in seconds.items()},
            "fine": bool(res["few"]["Acc@2"] >= res["dense"]["Acc@2"] - MARGIN)}


def run_dataset(pairs, engine_of, counts, pool: int, seed: int) -> dict:
    """{n: {method: judge(...)}} for one dataset's pairs."""
    dense, dense_s = [], {m: [] for m in METHODS}
    for p in pairs:
        calls = default_calls(engine_of(p), None)
        dense.append({m: c[0] for m, c in calls.items()})
        for m, (_, s) in calls.items():
            dense_s[m].append(s)
    rng = np.random.default_rng(seed)
    out = {}
    for n in counts:
        entries, few_s = {m: [] for m in METHODS}, {m: [] for m in METHODS}
        for j, idx in draws(pairs, n, pool, rng):
            p = pairs[j]
            grid = grid_queries(p.img1.shape[:2], STRIDE).numpy()
            for m, (few, s) in default_calls(engine_of(p), grid[idx]).items():
                entries[m].append((p.flow, p.valid, few, dense[j][m][idx]))
                few_s[m].append(s)
        out[str(n)] = {m: judge(entries[m], {"few": few_s[m], "dense": dense_s[m]}) for m in METHODS}
        print(f"  n={n}: {len(entries[METHODS[0]])} draws", flush=True)
    return out


def table(doc: dict) -> None:
    print(f"\nthe default call at n queries (few) against the dense call at the same points (dense); "
          f"rule: few Acc@2 >= dense Acc@2 - {MARGIN:g}")
    print(f"{'dataset':12s} {'n':>5s} {'refine':6s} {'points':>6s} {'Acc@1 few/dense':>16s} {'Acc@2 few/dense':>16s} "
          f"{'Acc@10 few/dense':>17s} {'APE few/dense':>14s} {'same end':>8s} {'s/call few/dense':>17s}  fine")
    for dname, per_n in doc["datasets"].items():
        for n, per_method in per_n.items():
            for m, r in per_method.items():
                f, d, s = r["few"], r["dense"], r["seconds_per_call"]
                print(f"{dname:12s} {n:>5s} {m:6s} {r['points']:6d} {f['Acc@1']:8.3f}/{d['Acc@1']:.3f} "
                      f"{f['Acc@2']:8.3f}/{d['Acc@2']:.3f} {f['Acc@10']:9.3f}/{d['Acc@10']:.3f} "
                      f"{f['APE']:7.2f}/{d['APE']:<6.2f} {r['same_end_as_dense']:8.1%} {s['few']:8.2f}/{s['dense']:<8.2f} "
                      f" {'yes' if r['fine'] else 'NO'}")
    print(f"verdict: {doc['verdict']}")


def main(argv=None):
    parser = build_parser()
    a = parser.parse_args(argv)
    check_args(parser, a, {"weights": weights_rule, "threads": check_threads, "pool": lambda v, n: check_integer(v, n, 1),
                           **DATASET_RULES})
    if min(a.counts) < 1:
        parser.error(f"--counts must be integers >= 1, got {a.counts}")
    out = output_path(parser, a, f"few_queries_{torch.device(a.device).type}.json")
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        model = W.load_model(a.weights, device=a.device)
    except (FileNotFoundError, W.CheckpointError) as e:
        parser.error(f"{e}" + ("" if a.weights else " (no trained default model yet: pass one with --weights PATH)"))
    doc = {"command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
           "machine": {"platform": platform.platform(), "processor": platform.processor(), "device": a.device,
                       "torch": torch.__version__, "threads": torch.get_num_threads()},
           "weights": {"path": str(a.weights or W.DEFAULT_WEIGHTS), "is_default": a.weights is None},
           "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items()},
           "rule": f"for each refine method, dataset and n: few-query Acc@2 >= the dense call's at the same points - "
                   f"{MARGIN:g}", "datasets": {}}
    t0 = time.perf_counter()
    for dname, pairs in datasets(a):
        print(f"{dname}: {len(pairs)} pair(s)", flush=True)
        engines = {}

        def engine_of(p):
            if p.name not in engines:
                engines[p.name] = Engine(p.img1, p.img3, model=model, device=a.device)
            return engines[p.name]

        doc["datasets"][dname] = run_dataset(pairs, engine_of, a.counts, a.pool, a.draw_seed)
    failed = [f"{d} n={n} {m}" for d, per_n in doc["datasets"].items() for n, pm in per_n.items()
              for m, r in pm.items() if not r["fine"]]
    doc["verdict"] = "pass" if not failed else f"fail ({', '.join(failed)})"
    doc["total_seconds"] = time.perf_counter() - t0
    return publish(doc, table, out)


if __name__ == "__main__":
    main()
