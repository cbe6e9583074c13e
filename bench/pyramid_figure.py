"""The per-level motion fields of coarse-to-fine MIND on the demo pair, against its ground truth.

    python bench/pyramid_figure.py [--weights PATH] [--levels auto] [--radius 32] [--stride 4]
                                   [--threads 2] [--out bench/results/pyramid_fields.png] [--force]

The demo pair (``mind-engine demo``: the Middlebury motorcycle stereo pair at 256 wide, true
disparity 2.7-20.7 px) matched by ``Engine.coarse_to_fine``: one panel per level with the
horizontal motion of its dense field (``mind_engine.engine.pyramid``; in the caller's pixels,
all panels on one colour scale), the ground truth beside them, and, in the titles, the median
end-point error of the matches at ground-truth pixels for single-level MIND (same radius) and
for coarse to fine, measured in this run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mind_engine import Engine, load_model  # noqa: E402
from mind_engine.api import quiet_search_edge  # noqa: E402
from mind_engine.checks import check_levels  # noqa: E402
from mind_engine.cliargs import RULES, levels as levels_option  # noqa: E402
from mind_engine.commands.demo import DEMO_WIDTH  # noqa: E402
from mind_engine.evaluation.pairs import motorcycle  # noqa: E402
from mind_engine.safe_write import write_figure  # noqa: E402
from bench.report import add_output_args, check_args, output_path, weights_rule  # noqa: E402


def end_point_errors(m, flow: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """|p3 - (p1 + flow(p1))| at the matches whose p1 has ground truth."""
    p1 = np.rint(m.pts1).astype(int)
    ok = valid[p1[:, 1], p1[:, 0]]
    return np.linalg.norm(m.pts3[ok] - (m.pts1[ok] + flow[p1[ok, 1], p1[ok, 0]]), axis=1)


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="checkpoint (default: the bundled model)")
    p.add_argument("--levels", type=levels_option, default="auto", help="pyramid levels (an integer > 1 or 'auto')")
    p.add_argument("--radius", type=lambda s: None if s.lower() == "none" else int(s), default=32,
                   help="search range in pixels ('none': the whole image)")
    p.add_argument("--stride", type=int, default=4, help="query grid stride")
    p.add_argument("--threads", type=int, default=2)
    add_output_args(p, "pyramid_fields.png")
    a = p.parse_args(argv)
    check_args(p, a, {**RULES, "weights": weights_rule})
    out = output_path(p, a, "pyramid_fields.png")
    torch.set_num_threads(a.threads)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pair = motorcycle(DEMO_WIDTH)
    engine = Engine(pair.img1, pair.img3, model=load_model(a.weights, device="cpu"), device="cpu")
    levels = check_levels(a.levels, engine.hw, a.radius, name="--levels")
    t = time.perf_counter()
    with quiet_search_edge():  # one scale beyond what it follows is what the figure shows
        single = engine.match(stride=a.stride, radius=a.radius, levels=1, refine="none")  # the readout, as c2f below
    t_single = time.perf_counter() - t
    t = time.perf_counter()
    c2f = engine.coarse_to_fine(stride=a.stride, radius=a.radius, levels=levels)
    t_c2f = time.perf_counter() - t
    e1, ek = end_point_errors(single, pair.flow, pair.valid), end_point_errors(c2f.matches, pair.flow, pair.valid)

    truth = np.where(pair.valid, pair.flow[..., 0], np.nan)
    lo, hi = np.nanmin(truth) - 2, np.nanmax(truth) + 2
    panels = [("image 1", pair.img1, None), ("ground truth: horizontal motion (px)", truth, None)]
    for k, f in zip(range(c2f.levels - 1, -1, -1), c2f.fields):
        scale = 2 ** k  # the field in the caller's pixels
        panels.append((f"level {k} ({f.shape[1]}x{f.shape[0]}, radius {c2f.radii[c2f.levels - 1 - k]})",
                       f[..., 0] * scale, None))
    cols = 2
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 2.6 * rows), squeeze=False)
    for ax, (title, img, _) in zip(axes.ravel(), panels):
        if img.ndim == 3:
            ax.imshow(img)
        else:
            im = ax.imshow(img, cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
            fig.colorbar(im, ax=ax, fraction=0.03)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"Coarse-to-fine MIND on the motorcycle pair ({c2f.levels} levels, stride {a.stride}, radius "
                 f"{a.radius}): median end-point error {np.median(ek):.2f} px in {t_c2f:.1f} s; single level "
                 f"{np.median(e1):.2f} px in {t_single:.1f} s", fontsize=9)
    fig.tight_layout()
    write_figure(fig, out, dpi=110)
    print(f"single level: median EPE {np.median(e1):.2f} px, Acc@2 {(e1 <= 2).mean():.3f} ({t_single:.1f} s); "
          f"coarse to fine ({c2f.levels} levels): median EPE {np.median(ek):.2f} px, Acc@2 {(ek <= 2).mean():.3f} "
          f"({t_c2f:.1f} s); wrote {out}")
    return out


if __name__ == "__main__":
    main()
