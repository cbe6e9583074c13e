"""Pyramidal Lucas-Kanade from OpenCV, seeded with MIND's match (``refine="lk"``).

MIND finds the neighbourhood under large motion; it does not find the pixel (the bundled
model's ends are often 2-16 px off). OpenCV's ``calcOpticalFlowPyrLK`` with
``OPTFLOW_USE_INITIAL_FLOW`` finds the pixel from a start that close: the frame-1 end is the
patch tracked, the frame-3 end the start. A refined end is kept only when LK converged (status 1),
stayed in the image and moved by at most ``move_limit`` px; otherwise the raw end stays.
"""
from __future__ import annotations

import numpy as np

from ..images import to_tensor

CRITERIA_ITERATIONS = 30  # OpenCV's stopping rule: 30 iterations or a step under 0.01 px per level
CRITERIA_EPS = 0.01


def grey_u8(img) -> np.ndarray:
    """Any image mind_engine accepts (``images.to_tensor``; the engine's own (3, H, W) float tensors
    in [0, 1], on any device) -> (H, W) uint8 grey, as OpenCV's LK and DIS want it: the one grey
    conversion of the refinement, the baselines and the benchmarks."""
    import cv2

    t = to_tensor(img)
    a = (t.float().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)


def track(g_from: np.ndarray, g_to: np.ndarray, pts: np.ndarray, start: np.ndarray, window: int,
          levels: int) -> tuple[np.ndarray, np.ndarray]:
    """The patches of ``g_from`` around (N, 2) ``pts`` found in ``g_to`` by pyramidal LK started at
    ``start`` -> (N, 2) float32 points and (N,) bool: converged and finite."""
    import cv2

    if len(pts) == 0:
        return np.zeros((0, 2), np.float32), np.zeros(0, bool)
    p0 = np.ascontiguousarray(pts, np.float32).reshape(-1, 1, 2)
    p1 = np.ascontiguousarray(start, np.float32).reshape(-1, 1, 2).copy()
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, CRITERIA_ITERATIONS, CRITERIA_EPS)
    out, status, _ = cv2.calcOpticalFlowPyrLK(g_from, g_to, p0, p1, winSize=(window, window), maxLevel=levels,
                                              criteria=criteria, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    out = out.reshape(-1, 2)
    return out, status.reshape(-1).astype(bool) & np.isfinite(out).all(1)


def inside(pts: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(N,) bool: the (N, 2) points lie in an (h, w) image."""
    h, w = hw
    return (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)


def refine_end(g_fixed: np.ndarray, g_moved: np.ndarray, fixed: np.ndarray, start: np.ndarray, window: int,
               levels: int, move_limit: float) -> tuple[np.ndarray, np.ndarray]:
    """The end in ``g_moved`` of matches whose end in ``g_fixed`` is ``fixed``, refined by LK from
    ``start`` -> ((N, 2) float32 points, (N,) bool refined); where LK failed, left the image or
    moved more than ``move_limit`` px, the point is ``start``."""
    found, ok = track(g_fixed, g_moved, fixed, start, window, levels)
    ok &= inside(found, g_moved.shape) & (np.linalg.norm(found - start, axis=1) <= move_limit)
    return np.where(ok[:, None], found, start).astype(np.float32), ok
