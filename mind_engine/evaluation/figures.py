"""Figures with matplotlib (Agg backend, files only): matches on both images, and the paper's
Fig. 4 view (input 1, interpolated frame, input 3; below, each chosen query's sensitivity maps in
image 1 and image 3 with the peak P and the score S). Inputs are named I1 and I3 as everywhere
in mind_engine (the paper's figure calls them input 1 and 2)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize, PowerNorm  # noqa: E402

from ..matches import rank  # noqa: E402
from ..safe_write import write_figure  # noqa: E402


def as_rgb(img) -> np.ndarray:
    """Any image mind_engine accepts -> HxWx3 float in [0, 1] for plotting."""
    from ..images import to_tensor

    return to_tensor(img).permute(1, 2, 0).cpu().numpy()


def draw_matches(img1, img3, pts1, pts3, path, score=None, max_lines: int = 150, title: str | None = None,
                 good=None, flag=None, layout: str = "auto", dpi: int = 110) -> Path:
    """Image 1 and image 3 stacked (image 1 on top) or side by side (image 1 on the left), each
    match a line from p1 to p3 (the ``max_lines`` best by ``score``), coloured by score with a
    colour scale beside (MIND's score, the peak-to-mean ratio); ``good`` (N,) bool, when given,
    colours lines green (correct) / red (wrong) instead. ``layout`` "stacked", "side" or "auto":
    the one where the motion's larger component runs across the lines, so that it shows as their
    slant (stacked for mostly horizontal motion, side by side for mostly vertical). ``title`` may
    hold the settings the matches were made with (``mind-engine match`` and the demo put them there).
    ``flag`` (N,) bool: matches that failed a check, ranked after the rest (``Matches.order``: the
    refinement's check)."""
    a, b = as_rgb(img1), as_rgb(img3)
    h, w = a.shape[:2]
    pts1, pts3 = np.asarray(pts1, np.float64).reshape(-1, 2), np.asarray(pts3, np.float64).reshape(-1, 2)
    side = _side_by_side(layout, pts3 - pts1)
    gap = max(4, (w if side else h) // 20)
    offset = np.array([w + gap, 0.0]) if side else np.array([0.0, h + gap])
    canvas = np.ones((h, 2 * w + gap, 3) if side else (2 * h + gap, w, 3), np.float32)
    canvas[:h, :w] = a
    canvas[int(offset[1]):, int(offset[0]):] = b
    order = np.arange(len(pts1)) if score is None else rank(score, flag)
    order = order[:max_lines]
    ch, cw = canvas.shape[:2]
    fig, ax = plt.subplots(figsize=(min(16, 3 + cw / 40), min(16, 1 + ch / 40)))
    ax.imshow(canvas)
    colour = _line_colours(order, score, good, fig, ax)
    for i in order[::-1]:  # the best drawn last, on top
        (x1, y1), (x3, y3) = pts1[i], pts3[i] + offset
        ax.plot([x1, x3], [y1, y3], "-", color=colour(i), lw=0.8, alpha=0.8)
        ax.plot([x1, x3], [y1, y3], ".", color=colour(i), ms=3)
    ax.set_axis_off()
    where = "image 1 left, image 3 right" if side else "image 1 top, image 3 bottom"
    ax.set_title(title or f"{len(order)} of {len(pts1)} matches ({where})", fontsize=9)
    return _save(fig, path, dpi)


def _side_by_side(layout: str, motion: np.ndarray) -> bool:
    """Whether ``layout`` ("stacked", "side" or "auto") puts the images side by side; "auto" does
    when the matches' median vertical motion exceeds their median horizontal motion."""
    if layout not in ("stacked", "side", "auto"):
        raise ValueError(f"layout must be 'stacked', 'side' or 'auto', got {layout!r}")
    if layout != "auto":
        return layout == "side"
    return len(motion) > 0 and float(np.median(np.abs(motion[:, 1]))) > float(np.median(np.abs(motion[:, 0])))


def _line_colours(order, score, good, fig, ax):
    """Match index -> line colour: green/red by ``good``; else by score on viridis, with its colour
    scale (the drawn matches' range) beside ``ax``; else (no score) by rank, best yellow."""
    if good is not None:
        return lambda i: "lime" if good[i] else "red"
    cmap = plt.get_cmap("viridis")
    if score is None:
        rank = {int(i): r for r, i in enumerate(order)}
        return lambda i: cmap(1 - rank[int(i)] / max(1, len(order) - 1))
    score = np.asarray(score, np.float64)
    drawn = score[order] if len(order) else np.zeros(1)
    norm = Normalize(vmin=float(drawn.min()), vmax=float(max(drawn.max(), drawn.min() + 1e-6)))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("MIND score (peak / mean of its window)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return lambda i: cmap(norm(score[i]))


def _save(fig, path, dpi: int = 110) -> Path:
    try:
        fig.tight_layout()
        return write_figure(fig, path, dpi=dpi)
    finally:
        plt.close(fig)


def spread_queries(m, k: int = 5, margin: int = 16) -> np.ndarray:
    """``k`` queries of Matches ``m`` to show: the best-scoring one in each of ``k`` vertical
    strips of the image, away from the border (border queries often score high for lack of
    context and say little)."""
    q = np.asarray(m.query)
    if len(q) == 0:
        return q
    w, h = q[:, 0].max() + 1, q[:, 1].max() + 1
    inner = (q[:, 0] >= margin) & (q[:, 0] < w - margin) & (q[:, 1] >= margin) & (q[:, 1] < h - margin)
    if not inner.any():
        inner[:] = True
    strip = np.minimum((q[:, 0] / max(w, 1) * k).astype(int), k - 1)
    picks = []
    for s in range(k):
        idx = np.flatnonzero(inner & (strip == s))
        if len(idx):
            picks.append(idx[np.argmax(np.asarray(m.score)[idx])])
    return q[picks]


def sensitivity_figure(model, img1, img3, queries, path, device=None, tier: str = "auto",
                       radius: int | None = None, title: str | None = None) -> Path:
    """The paper's Fig. 4 view for a few (x, y) ``queries`` of the middle frame: top row input 1,
    the interpolated frame I2 (the queries), input 3 (match points); then one column per query
    with its maps S = max_c |d out / d I| in image 1 (upper) and image 3 (lower), each marked
    with the peak P and titled with P's coordinates and the score S (peak / mean of the 20 x 20
    window around P). The maps are one scale's rows, so P is the peak of one-scale matching within
    ``radius`` (coarse-to-fine matches are composed through warps and have no single map)."""
    from ..api import Engine, quiet_search_edge
    from ..interpolate import interpolate

    queries = np.asarray(queries, np.float64).reshape(-1, 2)
    engine = Engine(img1, img3, model=model, device=device, tier=tier)  # the images are read once, here
    with quiet_search_edge():
        m = engine.match(queries, radius=radius, progress=False, levels=1, refine="none")  # the maps' own peaks
    maps = [g.abs().amax(1).cpu().numpy() for g in engine.rows(queries)]
    peaks = [(m.pts1, m.score1), (m.pts3, m.score3)]
    a, b = as_rgb(engine.t1), as_rgb(engine.t3)
    mid = as_rgb(interpolate(engine.t1, engine.t3, model=engine.model, device=engine.device))
    n = len(queries)
    cols = max(3, n)
    h, w = a.shape[:2]
    fig = plt.figure(figsize=(3.2 * cols, (cols * 3.2 / 3 + 2 * 3.2) * h / w + 1.2))
    gs = fig.add_gridspec(3, 3 * cols)
    colors = plt.get_cmap("tab10")
    top = [(a, "input 1", peaks[0][0]), (mid, "interpolated I2 (queries)", queries), (b, "input 3", peaks[1][0])]
    for k, (im, name, pts) in enumerate(top):
        ax = fig.add_subplot(gs[0, k * cols:(k + 1) * cols])
        ax.imshow(im)
        for i, (x, y) in enumerate(pts):
            ax.plot(x, y, "o", mfc="none", mec=colors(i % 10), ms=7, mew=1.5)
            ax.text(x + 3, y - 3, str(i + 1), color=colors(i % 10), fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    for i in range(n):
        for r in range(2):
            ax = fig.add_subplot(gs[1 + r, 3 * i:3 * i + 3])
            s = maps[r][i]
            # S is very peaked: a power norm (gamma 0.4) keeps the tails visible
            ax.imshow(s, cmap="hot", norm=PowerNorm(0.4, vmin=0, vmax=max(float(s.max()), 1e-12)))
            (px, py), sc = peaks[r][0][i], peaks[r][1][i]
            ax.plot(px, py, "+", color="cyan", ms=10, mew=1.5)
            ax.set_title(f"#{i + 1} I{1 if r == 0 else 3}: P=({px:.0f},{py:.0f}) S={sc:.1f}", fontsize=8)
            ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
