"""Matching accuracy the paper's way (section 4.3): MIND against KLT and DIS, same run, same grid.

    python bench/accuracy.py [--weights PATH] [--stride 4] [--radius 32] [--levels auto] [--synthetic 3]
                             [--layered 3] [--moto-width 256] [--kitti DIR] [--sintel DIR] [--keep 1.0]

The defaults are issue 38's protocol: 384x128 pairs, stride 4, radius 32, levels "auto", the
paper's same-N protocol. Datasets (``mind_engine.evaluation.pairs``): synthetic-motion pairs
from held-out still images (motion up to ``--max-motion`` = 32 px), layered-motion pairs (shapes
moving over a moving background, occlusions, motion up to ``--layered-max-motion`` = 32 px)
textured from the same held-out images only, the Middlebury motorcycle stereo pair (downscaled;
the disparity range used is printed), and, when given, KITTI flow 2012 / MPI-Sintel training
folders (resized to 384x128 / 256x128 as in the paper). Methods, all on the grid of ``--stride``
(``mind_engine.evaluation.baselines``):

* MIND raw     (``mind_engine.match(refine="none")``: the network's readout through the whole
  pyramid, the paper's matcher with coarse to fine, ranked by its score),
* MIND         (the default call, ``mind_engine.match()``: MIND down to ``--finest-level`` ("auto":
  level 1, one level early, before a photometric refinement), refined by the default ``refine=``
  (DIS started from MIND's matches), matches failing the forward-backward check ranked last;
  ``mind_engine.refinement``),
* KLT          (OpenCV pyramidal LK from the grid points, ranked by its error),
* KLT+FB       (the same matches, those failing the LK forward-backward check of ``refine="lk"``
  ranked last: the ranking MIND's matches get, given to the baseline too),
* DIS          (OpenCV DIS flow at the grid points, ranked by forward-backward distance).

MIND runs twice per pair (once when the default call runs it to level 0): the whole readout, and
the default call's (``Engine.match`` with its defaults), timed apart. Fairness
(``mind_engine.evaluation.metrics``): per pair, matches without ground truth at p1 are dropped,
each method ranks by its own confidence, and the same number K = keep * (smallest evaluable
count) of best matches is kept for every method; errors are pooled over the pairs of a dataset.
Prints one table per dataset (methods as columns; rows APE, Acc@1/2/5/10/20/30), then each pair's
APE and Acc@10, and writes JSON with both to bench/results/accuracy_<device>.json (or --out; an
existing file only with --force).

Cost: MIND's default call on a 384x128 stride-4 pair takes seconds to tens of seconds on a busy
CPU core (7 pairs: a few minutes); the baselines and the refinement under a second per pair.
"""
from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mind_engine import Engine  # noqa: E402
from mind_engine import weights as W  # noqa: E402
from mind_engine.checks import check_integer, check_levels, check_radius, check_stride, check_threads  # noqa: E402
from mind_engine.cliargs import levels as levels_option, refuse  # noqa: E402
from mind_engine.defaults import (CHECK_TOL, FINEST_LEVEL, LEVELS, LK_LEVELS, LK_WINDOW, RADIUS, REFINE,  # noqa: E402
                                  STRIDE)
from mind_engine.engine.levels import FINEST_LEVELS  # noqa: E402
from mind_engine.engine.tiers import TIERS  # noqa: E402
from mind_engine.matches import REFINED  # noqa: E402
from mind_engine.refinement.check import consistent  # noqa: E402
from mind_engine.refinement.lk import grey_u8  # noqa: E402
from mind_engine.evaluation import baselines as B  # noqa: E402
from mind_engine.evaluation import pairs as E  # noqa: E402
from mind_engine.evaluation.metrics import THRESHOLDS, evaluate  # noqa: E402
from bench.report import add_output_args, check_args, output_path, weights_rule, write_json  # noqa: E402

EXTRA_THRESHOLDS = (1, 2)
METHODS = ("MIND raw", "MIND", "KLT", "KLT+FB", "DIS")


def parse_size(s: str):
    w, h = s.lower().split("x")
    return int(w), int(h)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="checkpoint (default: the bundled default model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--tier", default="auto", choices=["auto", *TIERS["torch"]],
                   help="engine tier for MIND (default auto: the fastest exact one available)")
    p.add_argument("--stride", type=int, default=STRIDE, help="grid stride for every method (default 4, the paper's)")
    p.add_argument("--radius", type=lambda s: None if s.lower() == "none" else int(s), default=RADIUS,
                   help="MIND search radius (default 32, the default call's; none: the whole image)")
    p.add_argument("--levels", type=levels_option, default=LEVELS, help="MIND's pyramid levels (default auto)")
    p.add_argument("--precision", default="fp32", type=str.lower, choices=("fp32", "bf16", "auto"),
                   help="MIND's number format (default fp32)")
    p.add_argument("--finest-level", default=FINEST_LEVEL, choices=["auto", *map(str, FINEST_LEVELS)],
                   help="the finest pyramid level MIND runs at (1: one level early, the refinement finishing; "
                        f"default {FINEST_LEVEL}, the default call's: 1 before a photometric refinement)")
    add_dataset_args(p)
    p.add_argument("--keep", type=float, nargs="+", default=[1.0],
                   help="fractions of the common evaluable count kept, one table each (default 1.0: the paper's "
                        "same N, the smallest evaluable count of the methods)")
    p.add_argument("--fb-tol", type=float, default=CHECK_TOL, help="KLT+FB's check tolerance (px; default the "
                                                                     "refinement's, 2)")
    p.add_argument("--threads", type=int, default=None)
    add_output_args(p, "accuracy_<device>.json")
    return p


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    """The datasets' options (what ``datasets`` reads), shared with bench/few_queries.py."""
    p.add_argument("--synthetic", type=int, default=3, help="number of synthetic-motion pairs (0: none)")
    p.add_argument("--size", type=parse_size, default=(384, 128), help="synthetic pair size WxH")
    p.add_argument("--max-motion", type=float, default=32.0, help="synthetic motion magnitude bound (px)")
    p.add_argument("--layered", type=int, default=3,
                   help="number of layered-motion pairs from held-out textures (0: none)")
    p.add_argument("--layered-max-motion", type=float, default=32.0,
                   help="layered motion magnitude bound, frame 1 to frame 3 (px)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--moto-width", type=int, default=256,
                   help="motorcycle width (0: skip it; 741: full resolution, disparities up to ~70 px)")
    p.add_argument("--kitti", default=None, help="KITTI flow 2012 training folder")
    p.add_argument("--sintel", default=None, help="MPI-Sintel training folder (final pass)")
    p.add_argument("--limit", type=int, default=None, help="at most this many KITTI / Sintel pairs")


DATASET_RULES = {"limit": lambda v, n: check_integer(v, n, 1), "synthetic": lambda v, n: check_integer(v, n, 0),
                 "layered": lambda v, n: check_integer(v, n, 0)}  # ``check_args`` rules of the datasets' options


def fail(msg: str):
    """One line and exit status 2, named after the script running (this one or bench/few_queries.py)."""
    refuse(Path(sys.argv[0]).name, msg)


def datasets(a):
    """[(name, pairs)] for the datasets asked for; a folder that holds no pairs is an error."""
    out = []
    if a.synthetic:
        out.append(("synthetic", E.synthetic_pairs(a.synthetic, a.size, a.max_motion, a.seed)))
    if a.layered:
        out.append(("layered", E.layered_pairs(a.layered, a.size, a.layered_max_motion, a.seed)))
    if a.moto_width:
        out.append(("motorcycle", [E.motorcycle(a.moto_width)]))
    try:
        if a.kitti:
            out.append(("kitti2012", list(E.kitti2012_pairs(a.kitti, limit=a.limit))))
        if a.sintel:
            out.append(("sintel-final", list(E.sintel_pairs(a.sintel, limit=a.limit))))
    except (OSError, ValueError) as e:
        fail(str(e))
    for name, pairs in out:
        if not pairs:
            fail(f"{name}: no evaluation pairs found")
    if not out:
        fail("no dataset selected (all of --synthetic, --layered, --moto-width, --kitti, --sintel are off)")
    return out


def klt_checked(img1, img3, k: B.Correspondences, tol: float) -> B.Correspondences:
    """KLT's matches ranked by the refinement's forward-backward check (failed last), then its error:
    the ranking MIND's default call gets, given to the baseline too."""
    g1, g3 = grey_u8(img1), grey_u8(img3)
    ok = consistent(g3, g1, k.pts3, k.pts1, LK_WINDOW, LK_LEVELS, tol)
    return B.Correspondences(k.pts1, k.pts3, k.score, k.query, ~ok, "KLT+FB")


def run_pair(p, model, a, timings):
    res = {}
    t = time.perf_counter()
    res["KLT"] = B.klt(p.img1, p.img3, a.stride)
    res["KLT+FB"] = klt_checked(p.img1, p.img3, res["KLT"], a.fb_tol)
    timings["KLT"] += time.perf_counter() - t
    t = time.perf_counter()
    res["DIS"] = B.dis(p.img1, p.img3, a.stride)
    timings["DIS"] += time.perf_counter() - t
    t = time.perf_counter()
    engine = Engine(p.img1, p.img3, model=model, device=a.device, tier=a.tier, precision=a.precision)
    raw = engine.match(stride=a.stride, radius=a.radius, levels=a.levels, refine="none")  # the whole pyramid
    timings["MIND readout"] += time.perf_counter() - t
    t = time.perf_counter()
    finest = engine.finest_level(REFINE, a.finest_level, a.levels, a.radius)
    # what match() returns: the readout (MIND stopped at ``finest``) through the refinement
    seed = raw if finest == 0 else engine.match(stride=a.stride, radius=a.radius, levels=a.levels, refine="none",
                                                finest_level=finest)
    default = engine.refined(seed, REFINE)
    timings["MIND default call"] += time.perf_counter() - t
    res["MIND raw"] = B.Correspondences.from_matches(raw, "MIND raw")
    res["MIND"] = B.Correspondences.from_matches(default, "MIND", ~default.consistent)
    extra = {"refined": float((default.refinement == REFINED).mean()) if len(default) else None,
             "consistent": float(default.consistent.mean()) if len(default) else None}
    if p.mid_corr is not None:
        extra["mind_through_query"] = {"MIND raw": query_errors(p, raw), "MIND": query_errors(p, default)}
    return res, extra


def query_errors(p, m) -> dict | None:
    """Synthetic pairs: MIND judged through its query q, |p1 - corr1(q)| and |p3 - corr3(q)|
    (a diagnostic beside the protocol's |p3 - (p1 + flow(p1))|)."""
    if p.mid_corr is None or len(m) == 0:
        return None
    c1, c3, ok = p.mid_corr
    q = np.asarray(m.query).astype(int)
    sel = ok[q[:, 1], q[:, 0]]
    e1 = np.linalg.norm(m.pts1[sel] - c1[q[sel, 1], q[sel, 0]], axis=1)
    e3 = np.linalg.norm(m.pts3[sel] - c3[q[sel, 1], q[sel, 0]], axis=1)
    return {"n": int(sel.sum()), "median_e1": float(np.median(e1)), "median_e3": float(np.median(e3)),
            "mean_e1": float(e1.mean()), "mean_e3": float(e3.mean()),
            "both_within_1px": float(((e1 <= 1) & (e3 <= 1)).mean()),
            "both_within_2px": float(((e1 <= 2) & (e3 <= 2)).mean())}


def table(name, results, methods, info_line):
    rows = ["APE"] + [f"Acc@{t}" for t in THRESHOLDS] + [f"Acc@{t}" for t in EXTRA_THRESHOLDS] + ["n"]
    w = max(11, *(len(m) + 2 for m in methods))
    lines = [f"== {name}: {info_line}", f"{'':<10}" + "".join(f"{m:>{w}}" for m in methods)]
    for r in rows:
        cells = []
        for m in methods:
            v = results[m][r]
            cells.append(f"{v:>{w}d}" if r == "n" else f"{v:>{w}.3f}")
        label = r + ("*" if r in [f"Acc@{t}" for t in EXTRA_THRESHOLDS] else "")
        lines.append(f"{label:<10}" + "".join(cells))
    return "\n".join(lines)


def per_pair_table(names, rows, methods):
    """One line per pair: each method's APE / Acc@10 on that pair alone."""
    w = max(15, *(len(m) + 2 for m in methods))
    lines = [f"  {'pair (APE / Acc@10)':<22}" + "".join(f"{m:>{w}}" for m in methods)]
    for name, r in zip(names, rows):
        lines.append(f"  {name:<22}" + "".join(f"{r[m]['APE']:>{w - 7}.2f} / {r[m]['Acc@10']:.2f}" for m in methods))
    return "\n".join(lines)


def main(argv=None):
    parser = build_parser()
    a = parser.parse_args(argv)
    check_args(parser, a, {"weights": weights_rule, "threads": check_threads, "stride": check_stride,
                           "radius": check_radius, **DATASET_RULES})
    out = output_path(parser, a, f"accuracy_{torch.device(a.device).type}.json")
    if not all(0 < k <= 1 for k in a.keep):
        fail(f"--keep fractions must lie in (0, 1], got {a.keep}")
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        a.levels = check_levels(a.levels, name="--levels")
    except ValueError as e:
        fail(str(e))
    wpath = Path(a.weights) if a.weights else W.DEFAULT_WEIGHTS
    try:
        model = W.load_model(a.weights, device=a.device)
    except (FileNotFoundError, W.CheckpointError) as e:
        fail(f"{e}" + ("" if a.weights else "\n  (no trained default model yet: pass one with --weights PATH)"))
    _, _, meta = W.read_checkpoint(wpath)
    sha = hashlib.sha256(wpath.read_bytes()).hexdigest()
    methods = list(METHODS)
    doc = {"command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
           "machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "device": a.device, "torch": torch.__version__, "threads": torch.get_num_threads()},
           "weights": {"path": str(wpath), "is_default": a.weights is None, "sha256": sha,
                       "config": model.config.to_dict(),
                       "metadata": {k: v for k, v in meta.items() if k not in ("config",)}},
           "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items()},
           "protocol": "per pair: drop matches without ground truth at p1; rank each method by its own "
                       "confidence (flagged last); keep K = keep * min evaluable count for every method; "
                       "error = |p3 - (p1 + gt_flow(p1))|; pooled over the pairs of a dataset",
           "datasets": {}}
    print(f"weights: {wpath} ({'default' if a.weights is None else 'given by --weights'}), sha256 {sha[:12]}, "
          f"config {model.config.to_dict()}")
    t_all = time.perf_counter()
    for dname, pairs in datasets(a):
        per_pair, timings = [], {k: 0.0 for k in ("KLT", "DIS", "MIND readout", "MIND default call")}
        extras = []
        for p in pairs:
            res, extra = run_pair(p, model, a, timings)
            per_pair.append((p.flow, p.valid, {m: res[m] for m in methods}))
            extras.append({"name": p.name, **extra, **{k: v for k, v in p.info.items() if k != "seed"}})
            print(f"  {p.name}: done ({time.perf_counter() - t_all:.0f} s)", flush=True)
        h, w = pairs[0].img1.shape[:2]
        base = f"{len(pairs)} pair(s) {w}x{h}, stride {a.stride}"
        if dname == "motorcycle":
            lo, hi = pairs[0].info["disparity_range"]
            base += f", disparity {lo:.1f}-{hi:.1f} px (scale {pairs[0].info['scale']:.3f})"
        if dname == "synthetic":
            base += f", |motion| <= {a.max_motion:g} px"
        if dname == "layered":
            base += f", |motion| <= {a.layered_max_motion:g} px, with occlusions"
        checked = [e["consistent"] for e in extras if e.get("consistent") is not None]
        if checked:
            base += (f", MIND refined {np.mean([e['refined'] for e in extras]):.0%}, "
                     f"passed the check {np.mean(checked):.0%}")
        entry = {"pairs": extras, "seconds": timings, "summary": base, "results": {}, "results_per_pair": {}}
        for keep in a.keep:
            results = evaluate(per_pair, keep, THRESHOLDS + EXTRA_THRESHOLDS)
            info = f"{base}, keep {keep:g}: K/pair {results[methods[0]]['K_per_pair']}"
            print(table(dname, results, methods, info))
            rows = [evaluate([pp], keep, THRESHOLDS + EXTRA_THRESHOLDS) for pp in per_pair]
            print(per_pair_table([p.name for p in pairs], rows, methods))
            entry["results"][f"keep={keep:g}"] = results
            entry["results_per_pair"][f"keep={keep:g}"] = [{"name": p.name, **r} for p, r in zip(pairs, rows)]
        doc["datasets"][dname] = entry
    print("(* beyond the paper's rows: Acc@1 and Acc@2 show the effect of the refinement)")
    doc["total_seconds"] = time.perf_counter() - t_all
    write_json(doc, out)
    return doc


if __name__ == "__main__":
    main()
