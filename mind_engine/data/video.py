"""Video triplets: random, augmented crops of (t, t+gap, t+2*gap) from clips (``sources``).

Everything here yields triplets ``(i1, i2, i3)`` of (3, H, W) float32 tensors in [0, 1]: the
network sees ``i1`` and ``i3`` and must produce ``i2``.

Held-out split (documented, fixed): for every clip the **last** ``val_fraction`` (default 20 %)
of its frames are validation. A training triplet uses only frames before the cut, a validation
triplet only frames at or after it, so no frame is seen in both (:func:`split_index`).

Augmentation (the paper's, ``augment.augment_triplet``): a triplet is taken forward or backward in time with
equal probability, and flipped in one of four ways with equal probability; then cropped at a
random position to the working size (``size=(W, H)``, 384x128 by default). Frames are never
resized here: a clip whose frames are smaller than the crop is refused (``check_crop``).
"""
from __future__ import annotations

import numpy as np
import torch

from .augment import augment_triplet, draw_int, frame_tensor
from .sources import Clip
from .static import MAX_REDRAWS, StaticRule

DEFAULT_SIZE = (384, 128)  # (W, H): the paper's working size
CROP_MULTIPLE = 32  # the network's input sides are multiples of this (five 2x poolings)


def check_crop(clips: list[Clip], size) -> None:
    """Refuse a crop larger than some clip's frames, naming the clip, its frame size and the
    largest crop (in multiples of ``CROP_MULTIPLE``) that every clip holds: upscaling the
    frames would train the network on interpolated, blurred pixels without saying so."""
    w, h = int(size[0]), int(size[1])
    small = [c for c in clips if c.frames.shape[2] < w or c.frames.shape[1] < h]
    if not small:
        return
    fit_w = min(c.frames.shape[2] for c in clips) // CROP_MULTIPLE * CROP_MULTIPLE
    fit_h = min(c.frames.shape[1] for c in clips) // CROP_MULTIPLE * CROP_MULTIPLE
    c = small[0]
    fits = (f"pass --size {min(w, fit_w)}x{min(h, fit_h)} (the largest crop every clip holds) or larger frames"
            if fit_w and fit_h else f"frames under {CROP_MULTIPLE} px on a side cannot be trained on")
    others = f" (and {len(small) - 1} more clips)" if len(small) > 1 else ""
    raise ValueError(f"clip {c.name!r} has {c.frames.shape[2]}x{c.frames.shape[1]} frames{others}, smaller than the "
                     f"{w}x{h} crop (--size); frames are never upscaled: {fits}")


def split_index(n_frames: int, val_fraction: float) -> int:
    """First validation frame of a clip of ``n_frames``: the last ``val_fraction`` are held out
    (at least 3 frames on each side when ``0 < val_fraction < 1``)."""
    if val_fraction <= 0:
        return n_frames
    if val_fraction >= 1:
        return 0
    cut = n_frames - max(3, int(round(n_frames * val_fraction)))
    return max(3, cut)


def triplet_starts(n_frames: int, split: str, val_fraction: float, gap: int) -> range:
    """Valid first indices t of triplets (t, t+gap, t+2*gap) lying entirely inside ``split``."""
    cut = split_index(n_frames, val_fraction)
    lo, hi = {"train": (0, cut), "val": (cut, n_frames), "all": (0, n_frames)}[split]
    return range(lo, max(lo, hi - 2 * gap))


class VideoTriplets:
    """Random triplets from clips, with the paper's augmentation and random crops.

    ``split`` is 'train', 'val' or 'all' (see the module docstring for the held-out rule);
    ``gaps`` the frame spacings drawn from (1: consecutive frames). A clip is drawn uniformly,
    then a start frame uniformly among its valid ones. ``static``: the rule for near-static
    crops (``mind_engine.data.static``; None keeps every crop).
    """

    def __init__(self, clips: list[Clip], size=DEFAULT_SIZE, split: str = "train", val_fraction: float = 0.2,
                 gaps=(1,), augment: bool = True, static: StaticRule | None = None):
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        self.clips, self.size, self.split = list(clips), (int(size[0]), int(size[1])), split
        self.val_fraction, self.gaps, self.augment = float(val_fraction), tuple(int(g) for g in gaps), augment
        self.static = static
        check_crop(self.clips, self.size)
        self.options = [(ci, g) for ci, c in enumerate(self.clips) for g in self.gaps
                        if len(triplet_starts(len(c), split, self.val_fraction, g)) > 0]
        if not self.options:
            raise ValueError(f"no {split} triplets with gaps {self.gaps} in clips of lengths "
                             f"{[len(c) for c in self.clips]}")
        self._clip_ids = sorted({ci for ci, _ in self.options})

    def triplet_counts(self) -> dict[int, int]:
        """Distinct triplets of this split per gap, over all clips (before augmentation and crops)."""
        return {g: sum(len(triplet_starts(len(c), self.split, self.val_fraction, g)) for c in self.clips)
                for g in self.gaps}

    def triplet_frames(self, clip: int, start: int, gap: int) -> list[np.ndarray]:
        f = self.clips[clip].frames
        return [f[start], f[start + gap], f[start + 2 * gap]]

    def sample(self, g: torch.Generator):
        """One augmented, cropped triplet (three (3, H, W) tensors) and a dict describing it; with
        a ``static`` rule, near-static crops are redrawn as it says (``static``)."""
        for _ in range(MAX_REDRAWS):
            triplet, info = self._draw(g)
            if self.static is None or self.static.accepts(triplet[0], triplet[2], g):
                break
        return triplet, info

    def _draw(self, g: torch.Generator):
        ci = self._clip_ids[draw_int(len(self._clip_ids), g)]
        gaps = [gp for c, gp in self.options if c == ci]
        gap = gaps[draw_int(len(gaps), g)]
        starts = triplet_starts(len(self.clips[ci]), self.split, self.val_fraction, gap)
        start = starts[draw_int(len(starts), g)]
        reverse, flip_mode = (bool(draw_int(2, g)), draw_int(4, g)) if self.augment else (False, 0)
        w, h = self.size
        frames = self.triplet_frames(ci, start, gap)
        fh, fw = frames[0].shape[:2]
        y0, x0 = draw_int(fh - h + 1, g), draw_int(fw - w + 1, g)
        crops = [frame_tensor(f[y0:y0 + h, x0:x0 + w]) for f in frames]
        info = dict(clip=ci, start=start, gap=gap, reverse=reverse, flip=flip_mode, x0=x0, y0=y0)
        return augment_triplet(*crops, reverse, flip_mode), info

    def batch(self, batch_size: int, g: torch.Generator):
        """(i1, i2, i3), each (B, 3, H, W)."""
        ts = [self.sample(g)[0] for _ in range(batch_size)]
        return tuple(torch.stack([t[k] for t in ts]) for k in range(3))

    def fixed(self, n: int, seed: int = 0, gap: int | None = None):
        """``n`` deterministic un-augmented triplets (for validation), evenly spread over clips."""
        g = torch.Generator().manual_seed(seed)
        out, w, h = [], *self.size
        for k in range(n):
            ci = self._clip_ids[k % len(self._clip_ids)]
            gp = gap if gap is not None else min(gp for c, gp in self.options if c == ci)
            starts = triplet_starts(len(self.clips[ci]), self.split, self.val_fraction, gp)
            if len(starts) == 0:
                continue
            start = starts[(k // len(self._clip_ids) * 7 + draw_int(len(starts), g)) % len(starts)]
            frames = self.triplet_frames(ci, start, gp)
            fh, fw = frames[0].shape[:2]
            y0, x0 = draw_int(fh - h + 1, g), draw_int(fw - w + 1, g)
            out.append(tuple(frame_tensor(f[y0:y0 + h, x0:x0 + w]) for f in frames))
        return tuple(torch.stack([t[k] for t in out]) for k in range(3))


def held_out_triplets(clips: list[Clip], val_fraction: float = 0.2, gap: int = 1, every: int = 1):
    """Whole-frame held-out triplets (uint8 HxWx3 numpy frames) for benchmarks: for each clip,
    triplets (t, t+gap, t+2gap) starting at every ``every``-th validation frame."""
    out = []
    for c in clips:
        for t in triplet_starts(len(c), "val", val_fraction, gap)[::every]:
            out.append((c.name, t, c.frames[t], c.frames[t + gap], c.frames[t + 2 * gap]))
    return out
