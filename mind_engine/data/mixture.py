"""Mixing triplet sources into training batches."""
from __future__ import annotations

import torch

from .layered import LayeredMotion
from .synthetic import SyntheticMotion
from .video import VideoTriplets


class Mixture:
    """Draws a batch element from ``synthetic`` with probability ``p``, from ``layered`` with
    probability ``p_layered`` and from ``video`` otherwise (both 0: video only, no extra random
    draws; one uniform draw per element otherwise, so ``p`` alone behaves as before)."""

    def __init__(self, video: VideoTriplets, synthetic: SyntheticMotion | None = None, p: float = 0.0,
                 layered: LayeredMotion | None = None, p_layered: float = 0.0):
        self.video, self.synthetic, self.layered = video, synthetic, layered
        self.p = float(p) if synthetic is not None else 0.0
        self.p_layered = float(p_layered) if layered is not None else 0.0
        if self.p < 0 or self.p_layered < 0 or self.p + self.p_layered > 1:
            raise ValueError(f"the fractions of synthetic ({p}, --synthetic) and layered ({p_layered}, --layered) "
                             f"triplets must be >= 0 with a sum of at most 1")

    def batch(self, batch_size: int, g: torch.Generator):
        ts = []
        for _ in range(batch_size):
            u = float(torch.rand((), generator=g)) if self.p + self.p_layered > 0 else 1.0
            if u < self.p:
                ts.append(self.synthetic.sample(g, augment=True)[0])
            elif u < self.p + self.p_layered:
                ts.append(self.layered.sample(g, augment=True, truth=False)[0])
            else:
                ts.append(self.video.sample(g)[0])
        return tuple(torch.stack([t[k] for t in ts]) for k in range(3))
