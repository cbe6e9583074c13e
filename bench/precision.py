"""Reduced precision (T4) against fp32: how often the match point is the same, and the score error.

    python bench/precision.py                        # CPU, bundled weights, bf16, a sample of queries
    python bench/precision.py --device cuda --precision bf16 fp16 --sample 0

For each precision and search radius (32, None) the same engine tier runs the same queries in
fp32 and in the reduced precision (``Engine(precision=...)``): agreement is the fraction of
(query, image) pairs whose match point is fp32's; the score error is |s - s_fp32| / s_fp32 over
the agreeing pairs (median, 99th percentile, max). With --c2f also coarse to fine (levels
"auto", radius 32, every query of the grid): the fraction of final matches whose two points are
fp32's, or within 1 px of them, and the same score errors. No timings (bench/latency.py times
c2f-bf16 beside c2f). Writes JSON (--out, default
bench/results/precision_<device>.json; an existing file only with --force).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from mind_engine import Engine
from mind_engine.engine.matching import grid_queries, search_boxes
from mind_engine.engine.tiers import make_tier
from mind_engine.model import MindConfig, MindNet
from mind_engine.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # after the installed mind_engine: only for bench's own modules
from bench.testbed import cpu_name, match_agreement, test_pair  # noqa: E402
from bench.report import add_output_args, output_path, write_json  # noqa: E402


def agreement(ref, got) -> dict:
    """Match points and scores of one precision against fp32's: ``ref``, ``got`` are
    ((idx, peak, score) image 1, (idx, peak, score) image 3)."""
    same = torch.cat([(r[0].cpu() == g[0].cpu()) for r, g in zip(ref, got)])
    rs = torch.cat([r[2].cpu() for r in ref])
    gs = torch.cat([g[2].cpu() for g in got])
    err = ((gs - rs).abs() / rs.abs().clamp(min=1e-30))[same]
    q = (lambda p: float(err.quantile(p))) if len(err) else (lambda p: float("nan"))
    return {"pairs": len(same), "same_point": float(same.float().mean()), "score_rel_err_median": q(0.5),
            "score_rel_err_p99": q(0.99), "score_rel_err_max": q(1.0)}


def measure_c2f(model, i1, i3, stride: int, radius: int | None, precisions) -> list[dict]:
    """Coarse to fine (levels "auto") in fp32 and in each reduced precision on the same pair: a
    flipped point at a coarse level moves the field, so the agreement of the final matches is
    lower than one tier's."""
    def c2f(p):
        return Engine(i1[0], i3[0], model=model, device=i1.device, precision=p).coarse_to_fine(stride=stride,
                                                                                          radius=radius)

    ref = c2f("fp32")
    return [{"precision": p, "radius": radius, "mode": f"coarse to fine, {ref.levels} levels",
             **match_agreement(ref.matches, c2f(p).matches)} for p in precisions]


def measure(model, i1, i3, queries, radius, precisions, tier="t3", memory=None) -> list[dict]:
    """fp32 and each reduced precision on the same queries; one record per precision."""
    hw = tuple(i1.shape[-2:])
    boxes = search_boxes(queries.cpu(), radius, hw)
    with torch.no_grad():
        ref = make_tier(tier, model, i1, i3, memory=memory).match(queries, boxes, hw)
        out = []
        for p in precisions:
            got = make_tier(tier, model, i1, i3, memory=memory, precision=p).match(queries, boxes, hw)
            out.append({"precision": p, "radius": radius, "tier": tier, **agreement(ref, got)})
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", default="384x128", help="image size WxH (multiples of 32)")
    p.add_argument("--weights", default="default", help="'default' (bundled), 'random' (paper widths, seed 0), "
                                                        "or a checkpoint path")
    p.add_argument("--precision", nargs="+", default=["bf16"], choices=["bf16", "fp16"])
    p.add_argument("--stride", type=int, default=4, help="query grid stride (default 4: semi-dense)")
    p.add_argument("--sample", type=int, default=192, help="queries, evenly spaced over the grid (0: all)")
    p.add_argument("--radii", nargs="+", default=["32", "None"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--c2f", action="store_true",
                   help="also coarse to fine (levels auto, every query of the --stride grid, radius 32): the final "
                        "matches' agreement")
    add_output_args(p, "precision_<device>.json")
    args = p.parse_args(argv)
    out = output_path(p, args, f"precision_{torch.device(args.device).type}.json")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.weights == "random":
        torch.manual_seed(0)
        model = MindNet(MindConfig()).to(device).eval()
    else:
        model = load_model(None if args.weights == "default" else args.weights, device=device)
    w, h = (int(v) for v in args.size.lower().split("x"))
    i1, i3 = test_pair(h, w, device)
    q = grid_queries((h, w), args.stride)
    if args.sample and args.sample < len(q):
        q = q[torch.linspace(0, len(q) - 1, args.sample).long()]
    rows = []
    for r in args.radii:
        rows += measure(model, i1, i3, q.to(device), None if r == "None" else int(r), args.precision)
        print(rows[-1], file=sys.stderr)
    if args.c2f:
        rows += measure_c2f(model, i1, i3, args.stride, 32, args.precision)
        print(rows[-1], file=sys.stderr)
    res = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
           "device_type": device.type, "torch": torch.__version__, "size": args.size, "weights": args.weights,
           "queries": len(q), "stride": args.stride, "command": " ".join(sys.argv), "results": rows,
           "notes": "same_point: fraction of (query, image) pairs whose match point equals fp32's; score errors "
                    "are relative to fp32's score, over the agreeing pairs. Rows with a 'mode' (coarse to fine) count "
                    "final matches instead: same_point when both points equal fp32's, within_1px when both are within "
                    "1 px."}
    write_json(res, out)
    return res


if __name__ == "__main__":
    main()
