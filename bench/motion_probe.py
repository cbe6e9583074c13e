"""The motion probe (``mind_engine.evaluation.motion_probe``): does a model move content?

    python bench/motion_probe.py [--weights PATH ...] [--levels 1 2 3 auto] [--threads 1] [--baselines]
                                 [--small | --distances D ...] [--out JSON] [--force]

Held-out still images (never training textures) moved by known translations of 0.5-32 px in four
directions and two small affine motions, 96x96, queries every 12 px, search radius 24. Per
motion: the median match displacement along the true direction (a blender scores 0, a matcher d)
and across it, APE, Acc@1, Acc@1.5, Acc@2 of all evaluable matches, per match end the share on
the pixel nearest the true source and the signed error toward the query (the blend's bias), and
where the Jacobian rows' centroids point. ``--small``: only d = 0.5, 1, 1.5, 2, 3 (the small-motion
probe; its bar: Acc@1.5 >= 0.9 at d = 1, 2, 3). With
``--baselines``, OpenCV's KLT and DIS run on the same frames from the same points (in image 1).
``--levels``: each model is probed once per number of pyramid levels (``mind_engine.match``'s
``levels``; results keyed ``WEIGHTS`` for 1, ``WEIGHTS levels=K`` otherwise).
About 20 s per model on one core of this project's CPU. Writes bench/results/motion_probe_<device>.json
(or --out; an existing file only with --force).
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mind_engine import weights as W  # noqa: E402
from mind_engine.evaluation import baselines as B  # noqa: E402
from mind_engine.checks import check_levels, check_threads  # noqa: E402
from mind_engine.cliargs import levels as levels_option, refuse  # noqa: E402
from mind_engine.evaluation.motion_probe import (DISTANCES, SMALL, EngineMatcher, passes, probe,  # noqa: E402
                                                 small_motion_passes, table)
from bench.report import add_output_args, check_args, output_path, weights_rule, write_json  # noqa: E402


def baseline_matcher(method):
    """A probe matcher from a baseline of ``mind_engine.evaluation.baselines`` (points in image 1)."""
    def match(i1, i3, queries, radius):
        m = method(i1, i3, points=np.asarray(queries, np.float32))
        return SimpleNamespace(pts1=m.pts1, pts3=m.pts3)  # no ``query``: their points are in image 1, not frame 2

    return match


def verdicts(r: dict) -> dict:
    """The two bars: the model issue's (``passes``) and the precision issue's (``small_motion``,
    when d = 1, 2, 3 were probed)."""
    return {"passes": passes(r), "small_motion": small_motion_passes(r)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", nargs="+", default=["default"],
                   help="safetensors checkpoints to probe ('default': the bundled model)")
    p.add_argument("--levels", nargs="+", type=levels_option, default=[1],
                   help="pyramid levels to probe each model with (integers or 'auto'; default: 1)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--baselines", action="store_true", help="also probe KLT and DIS on the same frames")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--small", action="store_true", help=f"only the small motions {SMALL} (px), no affine cases")
    which.add_argument("--distances", nargs="+", type=float, default=None,
                       help=f"translation lengths to probe, px (default {DISTANCES})")
    add_output_args(p, "motion_probe_cpu.json")
    args = p.parse_args(argv)
    check_args(p, args, {"threads": check_threads, "weights": lambda v, n: [weights_rule(w, n) for w in v]})
    out = output_path(p, args, "motion_probe_cpu.json")
    try:
        levels = [check_levels(lv, name="--levels") for lv in args.levels]
    except ValueError as e:
        refuse(p.prog, str(e))
    torch.set_num_threads(args.threads)
    cases = {"distances": SMALL, "affine": ()} if args.small else {"distances": tuple(args.distances or DISTANCES)}
    if any(d <= 0 for d in cases["distances"]):
        refuse(p.prog, f"--distances must be positive, got {args.distances}")
    results = {}
    for spec in args.weights:
        path = W.DEFAULT_WEIGHTS if spec == "default" else Path(spec)
        model = W.model_from_checkpoint(path).eval()
        for lv in levels:
            engine = EngineMatcher(model, levels=lv)
            r = probe(model, matcher=engine.match, rows=engine.rows if lv == 1 else None, **cases)
            key = spec if lv == 1 else f"{spec} levels={lv}"
            results[key] = {**r, **verdicts(r), "weights_sha256": W.weights_sha256(model), "levels": lv}
            print(f"\n## {key} ({r['seconds']:.1f} s; {verdicts(r)})\n\n{table(r)}")
    if args.baselines:
        for name, method in (("KLT", B.klt), ("DIS", B.dis)):
            r = probe(matcher=baseline_matcher(method), **cases)
            results[name] = {**r, **verdicts(r)}
            print(f"\n## {name} ({r['seconds']:.1f} s; {verdicts(r)})\n\n{table(r)}")
    doc = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "threads": args.threads, "results": results}
    write_json(doc, out)
    return doc


if __name__ == "__main__":
    main()
