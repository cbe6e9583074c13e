"""The README's homography recipe on photo crops under known homographies: corner error of
``cv2.findHomography(..., cv2.RANSAC, 3.0)`` on each selection of the same matches.

    python bench/homography.py                  # the bundled model, 384x128 crops, match()'s defaults

Each pair is a 384x128 crop of a skimage photo and the same crop warped by a homography moving
its corners by 2-4 px (``mind_engine.evaluation.homography``), matched once by
``mind_engine.match`` with its defaults (stride 4, radius 32, levels auto, fp32). The selections
compared: the 500 best textured matches (the recipe before issue 39), every textured match,
every match, and the best textured match per 16 px cell (``Matches.best_per_cell``, the recipe
now). Writes JSON (--out, default bench/results/homography_<device>.json; an existing file only
with --force) and a figure of the recipe's inliers on the first pair (--figure, default
bench/results/homography_inliers.png).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from mind_engine import load_model, match
from mind_engine.data.sources import still_image
from mind_engine.evaluation.figures import draw_matches
from mind_engine.evaluation.homography import corner_error, warped_pair
from mind_engine.interfaces.opencv import to_cv_points

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # after the installed mind_engine: only for bench.report
from bench.report import RESULTS, add_output_args, output_path, publish  # noqa: E402

W, H = 384, 128
# photo, crop's top-left (x, y), corner shifts (top-left, top-right, bottom-right, bottom-left) img1 -> img3
PAIRS = [("astronaut", (60, 150), [[2, 1], [-3, 2], [4, -2], [-1, -3]]),
         ("coffee", (100, 150), [[3, -2], [-2, 3], [2, 2], [-3, -1]]),
         ("chelsea", (30, 100), [[-2, 2], [3, 1], [-1, -3], [2, 3]])]
CELL = 16  # the recipe's cell: one match per 16 x 16 px of the middle frame


def selections(m) -> dict:
    textured = m.textured()
    return {"top 500 textured (before)": textured.top(500), "every textured match": textured,
            "every match": m, f"best per {CELL} px cell, textured (recipe)": textured.best_per_cell(CELL)}


def fit(sel) -> tuple[np.ndarray | None, np.ndarray]:
    """The recipe's fit: RANSAC with a 3 px threshold; (H, inlier mask)."""
    if len(sel) < 4:
        return None, np.zeros(len(sel), bool)
    est, inliers = cv2.findHomography(*to_cv_points(sel), cv2.RANSAC, 3.0)
    return est, (inliers.ravel().astype(bool) if inliers is not None else np.zeros(len(sel), bool))


def table(doc: dict) -> None:
    names = list(doc["pairs"][0]["selections"])
    print(f"{'pair':12s} " + " ".join(f"{n[:28]:>28s}" for n in names) + "   (corner error px / matches)")
    for r in doc["pairs"]:
        print(f"{r['photo']:12s} " + " ".join(f"{s['corner_error_px']:>16.2f} / {s['matches']:<9d}"
                                              for s in r["selections"].values()))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="checkpoint (default: the bundled model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--figure", default=str(RESULTS / "homography_inliers.png"), help="the inlier figure's path")
    add_output_args(p, "homography_<device>.json")
    args = p.parse_args(argv)
    out = output_path(p, args, f"homography_{torch.device(args.device).type}.json")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.weights, device=args.device)
    rows, t0 = [], time.perf_counter()
    for i, (photo, (x, y), shift) in enumerate(PAIRS):
        img1, img3, truth = warped_pair(still_image(photo), x, y, W, H, shift)
        m = match(img1, img3, model=model, device=args.device)
        row = {"photo": photo, "crop": [x, y, W, H], "corner_shift": shift, "matches": len(m), "selections": {}}
        for name, sel in selections(m).items():
            est, inliers = fit(sel)
            row["selections"][name] = {"matches": len(sel), "inliers": int(inliers.sum()),
                                       "corner_error_px": round(corner_error(est, truth, (H, W)), 3)}
        if i == 0:
            sel = m.textured().best_per_cell(CELL)
            inliers = fit(sel)[1]
            err = row["selections"][f"best per {CELL} px cell, textured (recipe)"]["corner_error_px"]
            draw_matches(img1, img3, sel.pts1, sel.pts3, args.figure, good=inliers, max_lines=len(sel), dpi=60,
                         layout="stacked",
                         title=f"{photo} under a known homography: the recipe's {int(inliers.sum())} inliers (green) "
                               f"of {len(sel)}, corner error {err:.2f} px")
            Image.open(args.figure).quantize(256).save(args.figure, optimize=True)  # a small file to commit
        rows.append(row)
        print(f"{photo}: done", file=sys.stderr)
    doc = {"torch": torch.__version__, "size": [W, H], "weights": args.weights or "default", "cell": CELL,
           "settings": "mind_engine.match defaults (stride 4, radius 32, levels auto, fp32)",
           "ransac_threshold_px": 3.0, "seconds": round(time.perf_counter() - t0, 1), "command": " ".join(sys.argv),
           "pairs": rows}
    return publish(doc, table, out)


if __name__ == "__main__":
    main()
