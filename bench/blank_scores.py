"""Scores and texture on blank, unrelated and real pairs: does a score mean anything on nothing?

    python bench/blank_scores.py                 # the bundled model, 128x96 pairs, stride 8, radius 32

Every pair is 128x96 and matched by ``mind_engine.match`` (the bundled model unless --weights):
textureless pairs (constant black, grey, white; a horizontal ramp; a smooth radial blob), a pair
of flat grey with independent noise in each frame (the limit: noise counts as texture),
unrelated pairs (crops of two different skimage photos) and real pairs (a crop of the demo's
motorcycle stereo pair; skimage photos moved by a known shift, where the fraction of matches
within 2 px of the truth is reported too, for textured and untextured matches apart). For each
pair and each group it reports the median and the 10th and 90th percentiles of ``score`` and of
``texture`` (``mind_engine.texture``), and the fraction of matches below ``TEXTURE_MIN`` and
other thresholds. Writes JSON (--out, default bench/results/blank_scores_<device>.json; an
existing file only with --force).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mind_engine import load_model, match
from mind_engine.cliargs import RULES, levels as levels_option
from mind_engine.data.sources import still_image
from mind_engine.evaluation.pairs import motorcycle
from mind_engine.texture import TEXTURE_MIN

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # after the installed mind_engine: only for bench.report
from bench.report import add_output_args, check_args, output_path, publish, weights_rule  # noqa: E402

W, H = 128, 96
THRESHOLDS = (0.5, TEXTURE_MIN, 2.0)
SHIFTS = {"astronaut": (3, 2), "coffee": (2, -1), "chelsea": (-4, 1), "camera": (1, 3)}  # (dx, dy) img1 -> img3


def _crop(img: np.ndarray, x: int, y: int) -> np.ndarray:
    return np.ascontiguousarray(img[y:y + H, x:x + W])


def _photo(name: str, width: int = 192) -> np.ndarray:
    img = still_image(name)
    return cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])), interpolation=cv2.INTER_AREA)


def pairs() -> list[tuple[str, str, np.ndarray, np.ndarray, tuple | None]]:
    """(group, name, img1, img3, true shift or None) for every pair the bench matches."""
    flat = lambda v: np.full((H, W, 3), v, np.uint8)  # noqa: E731
    ramp = np.repeat(np.repeat(np.linspace(0, 255, W)[None, :, None], H, 0), 3, 2).round().astype(np.uint8)
    yy, xx = np.mgrid[:H, :W]
    blob = 60 + 120 * np.exp(-((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / (2 * 30.0 ** 2))
    blob = np.repeat(blob[:, :, None], 3, 2).round().astype(np.uint8)
    rng = np.random.default_rng(0)
    noisy = [np.clip(128 + rng.normal(0, 2, (H, W, 1)), 0, 255).round().astype(np.uint8).repeat(3, 2) for _ in "ab"]
    photos = {n: _photo(n) for n in SHIFTS}
    moto = motorcycle(256)
    out = [("textureless", "black", flat(0), flat(0), None), ("textureless", "grey", flat(128), flat(128), None),
           ("textureless", "white", flat(255), flat(255), None), ("textureless", "ramp", ramp, ramp, None),
           ("textureless", "radial blob", blob, blob, None),
           ("noise", "grey + noise sigma 2, independent", *noisy, None),
           ("unrelated", "astronaut / coffee", _crop(photos["astronaut"], 20, 10), _crop(photos["coffee"], 20, 10), None),
           ("unrelated", "chelsea / astronaut", _crop(photos["chelsea"], 20, 10), _crop(photos["astronaut"], 30, 30),
            None),
           ("unrelated", "camera / chelsea", _crop(photos["camera"], 30, 20), _crop(photos["chelsea"], 40, 20), None),
           ("real", "motorcycle stereo (demo pair, 256 wide, centre crop)", _crop(moto.img1, 64, 40),
            _crop(moto.img3, 64, 40), None)]
    for name, (dx, dy) in SHIFTS.items():  # img3's content at p + (dx, dy) is img1's at p
        out.append(("real", f"{name} moved by ({dx}, {dy})", _crop(photos[name], 20, 20),
                    _crop(photos[name], 20 - dx, 20 - dy), (dx, dy)))
    return out


def _spread(v: np.ndarray) -> dict:
    if len(v) == 0:
        return {"p10": None, "median": None, "p90": None}
    return {k: round(float(np.percentile(v, p)), 3) for k, p in (("p10", 10), ("median", 50), ("p90", 90))}


def summary(score: np.ndarray, texture: np.ndarray) -> dict:
    kept = texture >= TEXTURE_MIN
    return {"matches": int(len(score)), "score": _spread(score), "texture": _spread(texture),
            "below": {str(t): round(float((texture < t).mean()), 4) for t in THRESHOLDS},
            "score_of_kept": _spread(score[kept])}


def within_2px(m, shift) -> dict:
    """Fraction of matches whose p3 - p1 is within 2 px of the true shift, textured and untextured apart."""
    ok = np.linalg.norm(m.pts3 - m.pts1 - np.asarray(shift, np.float32), axis=1) <= 2
    kept = m.texture >= TEXTURE_MIN
    part = lambda sel: {"matches": int(sel.sum()), "acc2": round(float(ok[sel].mean()), 4) if sel.any() else None}  # noqa: E731
    return {"textured": part(kept), "untextured": part(~kept)}


def table(doc: dict) -> None:
    print(f"{'group':12s} {'pair':52s} {'score p10/med/p90':>22s} {'texture p10/med/p90':>22s} "
          f"below {TEXTURE_MIN:g}")
    for r in doc["pairs"] + [{"group": g, "name": "(all)", **s} for g, s in doc["groups"].items()]:
        f = lambda d: "/".join("-" if d[k] is None else f"{d[k]:.2f}" for k in ("p10", "median", "p90"))  # noqa: E731
        print(f"{r['group']:12s} {r['name'][:52]:52s} {f(r['score']):>22s} {f(r['texture']):>22s} "
              f"{r['below'][str(TEXTURE_MIN)]:.3f}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="checkpoint (default: the bundled model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--stride", type=int, default=8)
    p.add_argument("--radius", type=int, default=32)
    p.add_argument("--levels", type=levels_option, default=1,
                   help="pyramid levels (default 1: one scale, as bench/results/blank_scores_cpu.json was measured)")
    p.add_argument("--threads", type=int, default=None)
    add_output_args(p, "blank_scores_<device>.json")
    args = p.parse_args(argv)
    check_args(p, args, {**RULES, "weights": weights_rule})
    out = output_path(p, args, f"blank_scores_{torch.device(args.device).type}.json")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.weights, device=args.device)
    rows, pooled, t0 = [], {}, time.perf_counter()
    for group, name, img1, img3, shift in pairs():
        m = match(img1, img3, stride=args.stride, radius=args.radius, model=model, device=args.device,
                  levels=args.levels, refine="none")  # the network's scores and points
        rows.append({"group": group, "name": name, **summary(m.score, m.texture)})
        if shift is not None:
            rows[-1]["within_2px"] = within_2px(m, shift)
        s, t = pooled.setdefault(group, ([], []))
        s.append(m.score)
        t.append(m.texture)
        print(f"{name}: done", file=sys.stderr)
    doc = {"device": platform.processor() or "cpu", "torch": torch.__version__, "size": [W, H],
           "weights": args.weights or "default", "stride": args.stride, "radius": args.radius, "levels": args.levels,
           "texture_min": TEXTURE_MIN, "seconds": round(time.perf_counter() - t0, 1), "command": " ".join(sys.argv),
           "pairs": rows,
           "groups": {g: summary(np.concatenate(s), np.concatenate(t)) for g, (s, t) in pooled.items()},
           "notes": "score: MIND's peak-to-mean ratio (the smaller of the two images'); texture: Matches.texture, "
                    "grey levels per pixel in the weakest direction over the score window (the smaller of the two "
                    "points'); below: fraction of matches with texture under each threshold; score_of_kept: the "
                    f"scores of the matches with texture >= {TEXTURE_MIN:g}."}
    return publish(doc, table, out)


if __name__ == "__main__":
    main()
