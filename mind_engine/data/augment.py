"""The paper's augmentation (time reversal and flips, of frames and of correspondences alike),
and the small helpers every triplet source shares. Every random choice is drawn from the
``torch.Generator`` the caller passes, so a sampler's state is that generator's state."""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch


def flip(t: torch.Tensor, mode: int) -> torch.Tensor:
    """Flip mode 0: none, 1: vertical (rows reversed), 2: horizontal (columns), 3: both."""
    dims = {0: [], 1: [-2], 2: [-1], 3: [-2, -1]}[int(mode)]
    return t.flip(dims) if dims else t


def augment_triplet(i1, i2, i3, reverse: bool, flip_mode: int):
    """The paper's augmentation: time reversal (swap the outer frames), then a flip."""
    if reverse:
        i1, i3 = i3, i1
    return flip(i1, flip_mode), flip(i2, flip_mode), flip(i3, flip_mode)


def draw_int(high: int, g: torch.Generator) -> int:
    """A uniform integer in [0, high) from ``g``."""
    return int(torch.randint(high, (1,), generator=g))


def cover(frames: list[np.ndarray], w: int, h: int) -> list[np.ndarray]:
    """Upscale frames (keeping aspect) if they are smaller than the crop in either side."""
    fh, fw = frames[0].shape[:2]
    s = max(w / fw, h / fh)
    if s <= 1:
        return frames
    nw, nh = max(w, math.ceil(fw * s)), max(h, math.ceil(fh * s))
    return [cv2.resize(f, (nw, nh), interpolation=cv2.INTER_CUBIC) for f in frames]


def frame_tensor(a: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)


def flip_points(corr1, corr3, reverse: bool, mode: int, w: int, h: int):
    """Correspondence maps (H,W,2) after time reversal and flip ``mode`` of the triplet."""
    if reverse:
        corr1, corr3 = corr3, corr1
    out = []
    for c in (corr1, corr3):
        c = c.copy()
        if mode in (1, 3):  # vertical: rows reversed, y -> h-1-y
            c = c[::-1]
            c[..., 1] = h - 1 - c[..., 1]
        if mode in (2, 3):  # horizontal
            c = c[:, ::-1]
            c[..., 0] = w - 1 - c[..., 0]
        out.append(np.ascontiguousarray(c))
    return out[0], out[1]


def flip_field(m: np.ndarray, mode: int) -> np.ndarray:
    """A motion field (H,W,2) after flip ``mode`` of the triplet."""
    m = m.copy()
    if mode in (1, 3):
        m = m[::-1]
        m[..., 1] = -m[..., 1]
    if mode in (2, 3):
        m = m[:, ::-1]
        m[..., 0] = -m[..., 0]
    return np.ascontiguousarray(m)
