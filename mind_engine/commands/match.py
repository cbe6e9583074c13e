"""``mind-engine match IMG1 IMG3``: match two images; print a summary, write JSON and a figure.

    mind-engine match IMG1 IMG3 [--stride 4] [--radius 32] [--levels auto] [--queries FILE] [--top K]
                                [--out matches.png] [--json [out.json]] [--threads N] [--weights W] [--device D]
                                [--refine dis|lk|peak|none] [--tier T] [--precision fp32|bf16|fp16|auto] [--fb]
"""
from __future__ import annotations

import json
import sys

import torch

from ..checks import FIGURE_SUFFIXES, check_writable
from ..cliargs import (add_match_options, add_model_options, add_queries_option, add_threads_option, choice, number,
                       read_queries, subcommand)
from ..matches import REFINED
from ..safe_write import write_json
from .common import check_inputs, input_files, load, match_record, read, run_match, settings_text


def add_parser(sub, tiers) -> None:
    m = subcommand(sub, "match", "match two images")
    m.add_argument("img1", help="the first image file")
    m.add_argument("img3", help="the second image file")
    add_match_options(m)
    add_queries_option(m)
    m.add_argument("--top", type=number, default=None, help="keep only the K best matches (default: all)")
    m.add_argument("--out", default=None, help="draw the matches to this image file (default: no figure)")
    m.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="write the matches as JSON to PATH (no PATH or '-': to stdout, the summary to stderr; "
                        "default: no JSON)")
    m.add_argument("--tier", default="auto", type=choice, choices=tiers,
                   help="engine tier (auto: the fastest exact one available)")
    m.add_argument("--precision", default="fp32", type=choice, choices=("fp32", "bf16", "fp16", "auto"),
                   help="the windowed tiers' number format (any case): fp32 is exact; bf16 is about 1.7x faster "
                        "through the pyramid on CPUs with bf16 units (AVX512-BF16 or AMX; README, 'Large motion: "
                        "coarse to fine'), not exact, and about 20x slower on CPUs without them (it warns); auto = bf16 where the device "
                        "has bf16 units, else fp32 (the plan line says which); fp16 is for GPUs")
    m.add_argument("--subpixel", action="store_const", dest="refine", const="peak",
                   help="the same as --refine peak (the quadratic fit of the sensitivity peak)")
    m.add_argument("--fb", action="store_true",
                   help="also run the network backwards and flag matches whose ends move (twice the time)")
    add_threads_option(m)
    add_model_options(m)


def _check(a) -> None:
    """The files and output paths of ``match``, before any network runs (the options are
    checked by ``cliargs.check_options``)."""
    check_inputs(a)
    a.points = read_queries(a.queries)
    if a.out:
        check_writable(a.out, "--out", FIGURE_SUFFIXES)
        from ..evaluation.figures import draw_matches  # noqa: F401  needs matplotlib: refuse before the slow part
    if a.json and a.json != "-":
        check_writable(a.json, "--json")


def run(a) -> int:
    _check(a)
    if a.threads:
        torch.set_num_threads(a.threads)
    model = load(a.weights, a.device)
    img1, img3 = read(a.img1), read(a.img3)
    m, flags, secs = run_match(img1, img3, model, queries=a.points, stride=a.stride, radius=a.radius,
                               device=a.device, tier=a.tier, refine=a.refine, fb=a.fb, top=a.top, progress=True,
                               levels=a.levels, precision=a.precision)
    h, w = img1.shape[:2]
    settings = settings_text(a.stride, a.radius, a.levels, a.tier, a.weights, (h, w), a.refine)
    to_stdout = a.json == "-"
    say = (lambda *x: print(*x, file=sys.stderr)) if to_stdout else print  # keep stdout pure JSON
    say(f"{len(m)} matches ({w}x{h}; {settings}) in {secs:.2f} s"
        + (f"; {int((m.refinement == REFINED).sum())} refined, {int(m.consistent.sum())} passed the check"
           if a.refine != "none" else "")
        + (f"; {int((~flags).sum())} forward-backward consistent" if flags is not None else ""))
    for i in range(min(5, len(m))):
        say(f"  q=({m.query[i][0]:.0f},{m.query[i][1]:.0f})  p1=({m.pts1[i][0]:.2f},{m.pts1[i][1]:.2f})"
            f"  p3=({m.pts3[i][0]:.2f},{m.pts3[i][1]:.2f})  score={m.score[i]:.2f}")
    if a.json:
        doc = {"img1": str(a.img1), "img3": str(a.img3), "width": w, "height": h, "stride": a.stride,
               "radius": a.radius, "queries": a.queries, "levels": a.levels, "top": a.top,
               "weights": a.weights or "default", "tier": a.tier, "refine": a.refine, "subpixel": a.refine == "peak",
               "fb": a.fb, "seconds": secs, "n": len(m), "matches": match_record(m, flags)}
        if to_stdout:
            print(json.dumps(doc, indent=1))
        else:
            write_json(a.json, doc, inputs=input_files(a), name="--json")
            say(f"wrote {a.json}")
    if a.out:
        from ..evaluation.figures import draw_matches

        draw_matches(img1, img3, m.pts1, m.pts3, a.out, score=m.score, flag=~m.consistent,
                     title=f"MIND: {len(m)} matches, best {min(150, len(m))} drawn\n{settings}")
        say(f"wrote {a.out}")
    return 0
