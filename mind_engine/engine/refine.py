"""Beyond the paper: sub-pixel refinement of MIND matches, and a forward-backward consistency flag.

Sub-pixel refinement
--------------------
A match point is the integer argmax ``p`` of ``S = max_c |g|``. Around it we fit the quadratic
``f(x, y) = a + b x + c y + d x^2 + e x y + f y^2`` to the 3 x 3 values of ``S`` centred on ``p`` by
least squares and move ``p`` to the stationary point of ``f`` when ``f`` has a maximum there
(negative-definite Hessian) within half a pixel in each axis (an integer argmax cannot be
further than that from a true peak). Otherwise, and where the 3 x 3 leaves the image or the
query's search box, each axis is refined alone by the 1-D parabola through its three values
(offset clipped to +-0.5), and an axis without both neighbours is left unrefined. The integer
peak and the scores are unchanged.

This needs ``S`` around the peak, i.e. the rows of the tier: :func:`match_chunk` computes them
once per chunk with ``engine.match_rows`` (on a windowed tier only where matching reads them:
the search box grown by the score window) and reduces them exactly as ``mind_engine.match`` does,
so ``mind_engine.match_subpixel`` costs about what ``match`` costs.

Forward-backward consistency
----------------------------
``match(img1, img3)`` and ``match(img3, img1)`` at the same middle-frame queries must agree: the
swapped network should trace each query to the same two pixels. A match is flagged when either
end moves by more than ``tol`` (default 1 px, Euclidean): :func:`fb_flags`, which
``mind_engine.match_fb`` applies. Costs a second matching pass.
"""
from __future__ import annotations

import numpy as np
import torch


# least-squares quadratic on the 3x3 stencil: coeffs = _PINV @ s (row-major, y then x)
_YY, _XX = np.mgrid[-1:2, -1:2]
_DESIGN = np.stack([np.ones(9), _XX.ravel(), _YY.ravel(), _XX.ravel() ** 2, (_XX * _YY).ravel(),
                    _YY.ravel() ** 2], 1)
_PINV = np.linalg.pinv(_DESIGN)  # (6, 9)


_REL_EPS = 1e-6  # curvatures below this fraction of the peak value count as flat


def _parabola(lo, mid, hi):
    """Vertex offset of the parabola through (-1, lo), (0, mid), (1, hi); 0 where not a max."""
    den = lo - 2 * mid + hi
    ok = np.isfinite(lo) & np.isfinite(hi) & (den < -_REL_EPS * np.abs(mid))
    off = np.where(ok, 0.5 * (lo - hi) / np.where(ok, den, -1.0), 0.0)
    return np.clip(off, -0.5, 0.5)


def quadratic_offsets(patches) -> np.ndarray:
    """(N, 3, 3) values of S around integer peaks (NaN outside the image) -> (N, 2) (dx, dy)."""
    p = np.asarray(patches, np.float64).reshape(-1, 3, 3)
    n = len(p)
    out = np.stack([_parabola(p[:, 1, 0], p[:, 1, 1], p[:, 1, 2]),
                    _parabola(p[:, 0, 1], p[:, 1, 1], p[:, 2, 1])], 1)
    full = np.isfinite(p.reshape(n, 9)).all(1)
    if full.any():
        c = p.reshape(n, 9)[full] @ _PINV.T  # a, b, c, d, e, f
        b, cy, d, e, f = c[:, 1], c[:, 2], c[:, 3], c[:, 4], c[:, 5]
        det = 4 * d * f - e * e
        scale = np.abs(p.reshape(n, 9)[full]).max(1)
        neg_def = (d < -_REL_EPS * scale) & (f < -_REL_EPS * scale) & (det > (_REL_EPS * scale) ** 2)
        safe = np.where(neg_def, det, 1.0)
        dx = (-2 * f * b + e * cy) / safe  # solve [2d e; e 2f] [x y]' = -[b c]'
        dy = (-2 * d * cy + e * b) / safe
        good = neg_def & (np.abs(dx) <= 0.5) & (np.abs(dy) <= 0.5)
        idx = np.flatnonzero(full)[good]
        out[idx] = np.stack([dx[good], dy[good]], 1)
    return out.astype(np.float32)


def sensitivity(rows: torch.Tensor) -> torch.Tensor:
    """Rows (N, 3, H, W) -> S = max_c |g| (N, H, W), float32."""
    return rows.abs().amax(1).float()


def peak_patches(s: torch.Tensor, idx: torch.Tensor, boxes: torch.Tensor | None = None) -> np.ndarray:
    """S (N, H, W) and flat peak indices (N,) -> the (N, 3, 3) neighbourhoods, NaN outside the
    image and outside each query's half-open search box [x0, y0, x1, y1) when ``boxes`` is given
    (the peak was only searched there, so nothing outside may pull it)."""
    n, h, w = s.shape
    idx = idx.to(s.device).long()
    py, px = idx // w, idx % w
    d = torch.arange(-1, 2, device=s.device)
    yy = (py[:, None] + d).view(n, 3, 1).expand(n, 3, 3)
    xx = (px[:, None] + d).view(n, 1, 3).expand(n, 3, 3)
    b = (torch.tensor([0, 0, w, h], device=s.device).expand(n, 4) if boxes is None
         else boxes.to(s.device).long()).view(n, 4, 1, 1)
    inside = ((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
              & (xx >= b[:, 0]) & (yy >= b[:, 1]) & (xx < b[:, 2]) & (yy < b[:, 3]))
    vals = s.flatten(1).gather(1, (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(n, 9)).view(n, 3, 3)
    return torch.where(inside, vals, float("nan")).cpu().numpy()


def subpixel_offsets(rows: torch.Tensor, idx: torch.Tensor, boxes: torch.Tensor | None = None) -> np.ndarray:
    """Rows (N, 3, H, W) in the caller's frame, their flat peaks (N,) and optionally their search
    boxes (N, 4) -> (N, 2) offsets."""
    return quadratic_offsets(peak_patches(sensitivity(rows), idx, boxes))


def match_chunk(engine, queries: torch.Tensor, boxes: torch.Tensor, hw):
    """One chunk of queries on a tier that has ``match_rows``: for image 1 and image 3, the tuple
    (idx, peak, score, offset) -- idx/peak/score exactly as ``engine.match`` gives them, and the
    sub-pixel offset (N, 2) of the quadratic fit."""
    from .matching import reduce_rows

    if not hasattr(engine, "match_rows"):
        raise ValueError(f"tier {engine.name!r} does not expose Jacobian rows; sub-pixel refinement "
                         f"needs them (use tier='t0' or a rows tier)")
    h, w = hw
    out = []
    for g in engine.match_rows(queries, boxes, hw):
        g = g[:, :, :h, :w]
        idx, peak, score = reduce_rows(g, boxes, hw)
        out.append((idx, peak, score, subpixel_offsets(g, idx, boxes)))
    return tuple(out)


def fb_flags(forward, backward, tol: float = 1.0) -> np.ndarray:
    """Forward matches (img1 -> img3) and backward matches (img3 -> img1) at the same queries ->
    (N,) bool, True where either end disagrees by more than ``tol`` pixels."""
    if not np.array_equal(forward.query, backward.query):
        raise ValueError("forward and backward matches must be made at the same queries")
    d1 = np.linalg.norm(forward.pts1 - backward.pts3, axis=1)
    d3 = np.linalg.norm(forward.pts3 - backward.pts1, axis=1)
    return (d1 > tol) | (d3 > tol)
