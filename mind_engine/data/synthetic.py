"""Synthetic-motion triplets: still images moved by a smooth random motion, with the true
correspondences of every middle-frame pixel (for training, and for evaluation pairs).

Held-out split: disjoint sets of still images, :data:`SYNTHETIC_TRAIN_IMAGES` for training and
:data:`SYNTHETIC_VAL_IMAGES` (``coffee`` and the left view of ``stereo_motorcycle``) for
evaluation.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from .augment import augment_triplet, cover, draw_int, flip_field, flip_points, frame_tensor
from .sources import downscale, still_image
from .video import DEFAULT_SIZE

SYNTHETIC_TRAIN_IMAGES = ("astronaut", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                          "brick", "camera", "grass", "gravel", "moon", "clock", "coins", "retina")
SYNTHETIC_VAL_IMAGES = ("coffee", "stereo_motorcycle")


def smooth_motion(h: int, w: int, max_motion: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random motion field m (h, w, 2) in pixels, (dx, dy), |m| <= max_motion:
    translation + small rotation/scale + a bicubically upsampled coarse random field."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    ang = math.radians(rng.uniform(-2.0, 2.0))
    sc = rng.uniform(-0.02, 0.02)
    a = np.array([[sc, -ang], [ang, sc]], np.float32)  # linearised rotation + scale
    m = np.stack([a[0, 0] * (xs - cx) + a[0, 1] * (ys - cy), a[1, 0] * (xs - cx) + a[1, 1] * (ys - cy)], -1)
    t = rng.uniform(-1, 1, 2) * max_motion * 0.6
    m += t.astype(np.float32)
    gh, gw = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    coarse = rng.normal(0, max_motion * 0.25, (gh, gw, 2)).astype(np.float32)
    m += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    mag = float(np.sqrt((m ** 2).sum(-1)).max())
    if mag > max_motion:
        m *= max_motion / mag
    return m.astype(np.float32)


def _sample_field(field: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    return cv2.remap(field, px.astype(np.float32), py.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _invert(q: np.ndarray, disp: np.ndarray, iters: int = 30) -> np.ndarray:
    """Solve p = q + disp(p) by fixed-point iteration (disp is smooth and small)."""
    p = q.copy()
    for _ in range(iters):
        d = _sample_field(disp, p[..., 0], p[..., 1])
        p = q + d
    return p


class SyntheticMotion:
    """Triplets from still images moved by a smooth random motion, with true correspondences.

    Frame 2 is the image (a crop of it). With a smooth motion m, frame 1 shows the image moved
    by -m/2 and frame 3 by +m/2: a pixel q of frame 2 lies at ``corr1[q] = p1`` in frame 1 with
    ``p1 = q - m(p1)/2`` and at ``corr3[q] = p3`` with ``p3 = q + m(p3)/2`` (frames are made by
    backward sampling, ``I1(p) = I2(p + m(p)/2)`` and ``I3(p) = I2(p - m(p)/2)``, and the
    correspondences are the exact inverses, found by fixed-point iteration). Coordinates are
    (x, y), pixel centres on integers. ``valid`` marks pixels whose correspondences fall inside
    both frames.

    ``split`` 'train' uses :data:`SYNTHETIC_TRAIN_IMAGES`, 'val' :data:`SYNTHETIC_VAL_IMAGES`.
    Images are downscaled so the longer side is at most ``max_side``.
    """

    def __init__(self, size=DEFAULT_SIZE, split: str = "train", max_motion: float = 8.0, images=None,
                 max_side: int = 512):
        names = images if images is not None else {"train": SYNTHETIC_TRAIN_IMAGES,
                                                  "val": SYNTHETIC_VAL_IMAGES}[split]
        self.size, self.max_motion, self.names = (int(size[0]), int(size[1])), float(max_motion), tuple(names)
        self.images = [downscale(still_image(n), max_side) for n in self.names]

    def sample(self, g: torch.Generator, augment: bool = False):
        """A triplet (three (3,H,W) tensors) and a dict with ``corr1``, ``corr3`` (H,W,2)
        float32, ``valid`` (H,W) bool and ``motion`` (H,W,2) numpy arrays.

        With ``augment`` the paper's flips and time reversal are applied to frames and the
        correspondences alike (for training); evaluation uses ``augment=False``.
        """
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=g))
        rng = np.random.default_rng(seed)
        w, h = self.size
        margin = int(math.ceil(self.max_motion)) + 2
        idx = int(rng.integers(len(self.images)))
        img = self.images[idx]
        img = cover([img], w + 2 * margin, h + 2 * margin)[0]
        ih, iw = img.shape[:2]
        y0 = int(rng.integers(ih - (h + 2 * margin) + 1))
        x0 = int(rng.integers(iw - (w + 2 * margin) + 1))
        big = img[y0:y0 + h + 2 * margin, x0:x0 + w + 2 * margin]
        bh, bw = big.shape[:2]
        m = smooth_motion(bh, bw, self.max_motion, rng)
        ys, xs = np.mgrid[0:bh, 0:bw].astype(np.float32)
        f1 = cv2.remap(big, xs + m[..., 0] / 2, ys + m[..., 1] / 2, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        f3 = cv2.remap(big, xs - m[..., 0] / 2, ys - m[..., 1] / 2, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        q = np.stack([xs, ys], -1)
        corr1 = _invert(q, -m / 2)
        corr3 = _invert(q, m / 2)
        sl = (slice(margin, margin + h), slice(margin, margin + w))
        frames = [f1[sl], big[sl], f3[sl]]
        corr1, corr3, motion = corr1[sl] - margin, corr3[sl] - margin, m[sl]

        def inside(c):
            return (c[..., 0] >= 0) & (c[..., 0] <= w - 1) & (c[..., 1] >= 0) & (c[..., 1] <= h - 1)

        ts = [frame_tensor(f) for f in frames]
        info = dict(image=self.names[idx], seed=seed)
        if augment:
            reverse, mode = bool(draw_int(2, g)), draw_int(4, g)
            ts = list(augment_triplet(*ts, reverse, mode))
            corr1, corr3 = flip_points(corr1, corr3, reverse, mode, w, h)
            motion = -motion if reverse else motion
            motion = flip_field(motion, mode)
        valid = inside(corr1) & inside(corr3)
        info.update(corr1=corr1.astype(np.float32), corr3=corr3.astype(np.float32), valid=valid,
                    motion=motion.astype(np.float32))
        return tuple(ts), info

    def batch(self, batch_size: int, g: torch.Generator, augment: bool = True):
        ts = [self.sample(g, augment)[0] for _ in range(batch_size)]
        return tuple(torch.stack([t[k] for t in ts]) for k in range(3))

    def fixed(self, n: int, seed: int = 0):
        """``n`` deterministic un-augmented triplets with their correspondence dicts."""
        g = torch.Generator().manual_seed(seed)
        return [self.sample(g, augment=False) for _ in range(n)]
