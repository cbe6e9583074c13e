"""How much an image varies around a match point: ``Matches.texture``.

MIND's score (a row's peak over the mean of its 20 x 20 window) measures how concentrated the
network's sensitivity is, and a network is sensitive in a concentrated way on any input: on a
blank pair its rows are its own impulse response, and blank pairs score like real ones
(``bench/blank_scores.py``). Where an image does not vary, no match can mean anything, so this
is measured on the images themselves, independent of the network and of the tier.

The texture of a point is the square root of the smaller eigenvalue of the image's structure
tensor (the mean of grad I grad I^T, Sobel gradients of the grey image in grey levels of 255)
over the score's window [x-10, x+10) x [y-10, y+10) clipped to the image (Shi and Tomasi's
"good features to track" measure): the gradient strength in the window's weakest direction, in
grey levels per pixel. It is 0 on a constant image and on a linear ramp (which varies in one
direction only, so a point can slide along it), and a few grey levels per pixel on photographs.
A match's texture is the smaller of its two points'. Image noise counts as texture.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .ops._torch_impl import SCORE_HALF

TEXTURE_MIN = 1.0  # grey levels per pixel; below it a match lies in a blank or ramp-like region


SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64) / 8


def _gradients(grey: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Sobel / 8 of an (H, W) float64 image along x and y, its edges replicated (a ramp's slope exactly)."""
    padded = F.pad(grey[None, None], (1, 1, 1, 1), mode="replicate")
    g = F.conv2d(padded, torch.stack([SOBEL_X, SOBEL_X.T])[:, None])[0]
    return g[0].numpy(), g[1].numpy()


def _window_sums(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sums of ``a`` (H, W) over the windows [x-h, x+h) x [y-h, y+h) clipped to it (integral image)."""
    h, w = a.shape
    ii = np.zeros((h + 1, w + 1))
    ii[1:, 1:] = a.cumsum(0).cumsum(1)
    x0, x1 = np.clip(x - SCORE_HALF, 0, w), np.clip(x + SCORE_HALF, 0, w)
    y0, y1 = np.clip(y - SCORE_HALF, 0, h), np.clip(y + SCORE_HALF, 0, h)
    return ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]


def texture_at(image: torch.Tensor, pts: np.ndarray) -> np.ndarray:
    """The texture (module docstring) of the (3, H, W) image in [0, 1] at each of the (N, 2)
    (x, y) points, rounded to the nearest pixel inside the image; (N,) float32. Computed in
    float64 on the CPU, so every tier and device gives the same values for the same points."""
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros(0, np.float32)
    grey = image.detach().to("cpu", torch.float64).mean(0) * 255
    gx, gy = _gradients(grey)
    h, w = gx.shape
    x = np.clip(np.rint(pts[:, 0]), 0, w - 1).astype(np.int64)
    y = np.clip(np.rint(pts[:, 1]), 0, h - 1).astype(np.int64)
    count = _window_sums(np.ones_like(gx), x, y)
    jxx, jyy, jxy = (_window_sums(g, x, y) / count for g in (gx * gx, gy * gy, gx * gy))
    smaller = (jxx + jyy) / 2 - np.sqrt(((jxx - jyy) / 2) ** 2 + jxy ** 2)
    return np.sqrt(np.maximum(smaller, 0)).astype(np.float32)


def match_texture(img1: torch.Tensor, img3: torch.Tensor, pts1: np.ndarray, pts3: np.ndarray) -> np.ndarray:
    """A match's texture: the smaller of its point's in img1 and its point's in img3."""
    return np.minimum(texture_at(img1, pts1), texture_at(img3, pts3))
