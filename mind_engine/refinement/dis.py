"""OpenCV's DIS optical flow started from MIND's matches (``refine="dis"``): the dense alternative.

MIND's matches are densified into a motion field (binned on the query grid of ``SEED_STRIDE``
by their middle-frame query, then ``engine.densify``'s outlier rejection and normalised
convolution, as the pyramid builds its fields), which DIS (preset medium) takes as its initial
flow, frame 1 -> 3 and, negated, 3 -> 1. A match keeps its frame-1 end; its frame-3 end becomes
``p1 + F13(p1)``, kept where it lies in the image within the move limit of MIND's (else MIND's
stays: fell back). The check is DIS's own: ``p3 + F31(p3)`` must return within ``tol`` px of p1.
"""
from __future__ import annotations

import numpy as np
import torch

from ..engine.densify import densify
from ..engine.matching import grid_axes
from .lk import inside

SEED_STRIDE = 4  # px: the grid MIND's matches are binned on (the default query grid)


def bilinear(field: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """An (H, W, C) float field sampled at (N, 2) (x, y) points, bilinear, border replicated -> (N, C)."""
    import cv2

    pts = np.asarray(pts, np.float32).reshape(-1, 2)
    m = cv2.remap(np.ascontiguousarray(field, np.float32), pts[:, :1], pts[:, 1:], cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_REPLICATE)
    return m.reshape(len(pts), -1)


def seed_field(query: np.ndarray, motion: np.ndarray, hw: tuple[int, int], stride: int = SEED_STRIDE) -> np.ndarray:
    """Matches' (N, 2) middle-frame queries and motions ``p3 - p1`` -> the dense (h, w, 2) field:
    the mean motion of each grid cell's matches, densified (``engine.densify``)."""
    ys, xs = grid_axes(hw, stride)
    if len(ys) * len(xs) == 0 or len(query) == 0:
        return np.zeros((*hw, 2), np.float32)
    q = np.asarray(query, np.float64)
    iy = np.clip(np.floor(q[:, 1] / stride).astype(int), 0, len(ys) - 1)
    ix = np.clip(np.floor(q[:, 0] / stride).astype(int), 0, len(xs) - 1)
    sums, counts = np.zeros((len(ys), len(xs), 2)), np.zeros((len(ys), len(xs)))
    np.add.at(sums, (iy, ix), motion)
    np.add.at(counts, (iy, ix), 1)
    vec = torch.from_numpy(sums / np.maximum(counts, 1)[..., None]).float()
    return densify(vec, torch.from_numpy(counts > 0), stride // 2, stride, hw).numpy()


def flows(g1: np.ndarray, g3: np.ndarray, field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DIS (medium) frame 1 -> 3 started from ``field`` and 3 -> 1 from ``-field``: (F13, F31).
    (OpenCV's DIS takes a flow handed to ``calc`` as its start.)"""
    import cv2

    out = []
    for a, b, start in ((g1, g3, field), (g3, g1, -field)):
        d = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        out.append(d.calc(a, b, np.ascontiguousarray(start, np.float32)))
    return out[0], out[1]


def refine(g1: np.ndarray, g3: np.ndarray, query, pts1, pts3, move_limit: float, tol: float):
    """Frame-3 ends of the matches (``pts1`` fixed) from DIS seeded by them -> ((N, 2) float32
    points, (N,) bool refined, (N,) bool passed DIS's forward-backward check)."""
    p1, raw3 = np.asarray(pts1, np.float32), np.asarray(pts3, np.float32)
    f13, f31 = flows(g1, g3, seed_field(query, raw3 - p1, g1.shape))
    found = p1 + bilinear(f13, p1)
    done = inside(found, g3.shape) & (np.linalg.norm(found - raw3, axis=1) <= move_limit)
    p3 = np.where(done[:, None], found, raw3).astype(np.float32)
    back = p3 + bilinear(f31, p3)
    return p3, done, inside(p3, g3.shape) & (np.linalg.norm(back - p1, axis=1) <= tol)
