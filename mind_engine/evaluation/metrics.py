"""Matching quality the paper's way (section 4.3): Average Point Error and Accuracy@T.

Ground truth
------------
Every evaluation pair carries the true displacement of image-1 pixels into image 3: ``flow``
(H, W, 2) float, (dx, dy), and ``valid`` (H, W) bool (KITTI and Middlebury are not dense).
A correspondence ``(p1, p3)`` of any method is judged where it starts, in image 1:

    error = || p3 - (p1 + flow(p1)) ||_2

``flow(p1)`` is sampled bilinearly (exactly the pixel's value for integer ``p1``); the
correspondence is *evaluable* only when ``p1`` lies in the image and every pixel with a non-zero
bilinear weight is valid. This is the KITTI / Sintel convention and the paper's ("a match is
correct if its pixel match in the second image is closer than T pixels to ground truth"). MIND's
``p1`` is the peak of the query's sensitivity map in image 1 (not the query itself), so MIND is
judged on the pair it returns, like every other method.

Fairness protocol (section 4.3)
-------------------------------
All methods match the same grid; each ranks its matches by its *own* confidence; the same
number ``K`` of best matches is kept for each, and the metrics are computed on those. Per pair:
non-evaluable matches are dropped (no method is charged for missing ground truth), each method's
remaining matches are ranked (unflagged before flagged, then by score, higher first, ties in grid
order), and ``K = round(keep * min over methods of the evaluable count)``. Errors of the kept
matches are pooled over all pairs of a dataset: APE is their mean, Accuracy@T the fraction
below ``T`` pixels.
"""
from __future__ import annotations

import numpy as np

from ..matches import rank  # the one ranking: flagged last, then by score

THRESHOLDS = (5, 10, 20, 30)


def sample_flow(flow: np.ndarray, valid: np.ndarray, pts: np.ndarray):
    """Bilinear ground truth at (N, 2) (x, y) points -> (gt (N, 2) float64, ok (N,) bool).

    ``ok`` is False outside the image or where a pixel with non-zero weight is not valid.
    """
    flow = np.asarray(flow, np.float64)
    valid = np.asarray(valid, bool)
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    h, w = valid.shape
    n = len(pts)
    gt = np.full((n, 2), np.nan)
    x, y = pts[:, 0], pts[:, 1]
    ok = np.isfinite(x) & np.isfinite(y) & (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1)
    xs, ys = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    x0 = np.minimum(np.floor(xs).astype(np.int64), w - 1)
    y0 = np.minimum(np.floor(ys).astype(np.int64), h - 1)
    fx, fy = xs - x0, ys - y0
    acc = np.zeros((n, 2))
    for dy, dx, wt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                       (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        used = wt > 0
        yy, xx = np.minimum(y0 + dy, h - 1), np.minimum(x0 + dx, w - 1)
        ok &= ~used | valid[yy, xx]
        f = flow[yy, xx]
        acc += np.where(used[:, None], f * wt[:, None], 0.0)
    gt[ok] = acc[ok]
    return gt, ok


def point_errors(pts1, pts3, flow, valid):
    """End-point errors ``|p3 - (p1 + flow(p1))|`` (N,) and the evaluable mask (N,)."""
    pts1 = np.asarray(pts1, np.float64).reshape(-1, 2)
    pts3 = np.asarray(pts3, np.float64).reshape(-1, 2)
    gt, ok = sample_flow(flow, valid, pts1)
    ok &= np.isfinite(pts3).all(1)
    err = np.linalg.norm(pts3 - (pts1 + gt), axis=1)
    return np.where(ok, err, np.nan), ok


def kept_errors(results: dict, flow, valid, keep: float = 1.0) -> tuple[dict, int]:
    """One pair: ``results`` maps a method name to anything with ``pts1``, ``pts3``, ``score``
    (and optionally ``flag``). Returns ({name: errors of its K best evaluable matches, best
    first}, K) under the fairness protocol (module docstring)."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be a fraction in (0, 1], got {keep}")
    ranked = {}
    for name, r in results.items():
        err, ok = point_errors(r.pts1, r.pts3, flow, valid)
        order = rank(r.score, getattr(r, "flag", None))
        order = order[ok[order]]
        ranked[name] = err[order]
    k = int(round(keep * min(len(e) for e in ranked.values()))) if ranked else 0
    return {name: e[:k] for name, e in ranked.items()}, k


def summarize(errors, thresholds=THRESHOLDS) -> dict:
    """APE and Accuracy@T of a set of end-point errors (NaN metrics for an empty set)."""
    e = np.asarray(errors, np.float64)
    out = {"n": int(len(e)), "APE": float(e.mean()) if len(e) else float("nan")}
    for t in thresholds:
        out[f"Acc@{t:g}"] = float((e < t).mean()) if len(e) else float("nan")
    return out


def evaluate(pairs, keep: float = 1.0, thresholds=THRESHOLDS) -> dict:
    """Pooled metrics over pairs. ``pairs``: iterable of (flow, valid, {name: result}); every
    pair must hold the same methods. Returns {name: summarize(...) plus 'K_per_pair'}."""
    pooled: dict[str, list] = {}
    ks = []
    for flow, valid, results in pairs:
        kept, k = kept_errors(results, flow, valid, keep)
        if pooled and set(kept) != set(pooled):
            raise ValueError(f"pairs hold different methods: {sorted(kept)} vs {sorted(pooled)}")
        for name, e in kept.items():
            pooled.setdefault(name, []).append(e)
        ks.append(k)
    return {name: {**summarize(np.concatenate(es), thresholds), "K_per_pair": ks}
            for name, es in pooled.items()}
