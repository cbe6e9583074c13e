"""Mixing triplet sources into training batches."""
from __future__ import annotations

import torch

from .synthetic import SyntheticMotion
from .video import VideoTriplets


class Mixture:
    """Draws a batch element from ``synthetic`` with probability ``p`` and from ``video``
    otherwise (``p = 0``: video only, no extra random draws)."""

    def __init__(self, video: VideoTriplets, synthetic: SyntheticMotion | None = None, p: float = 0.0):
        self.video, self.synthetic, self.p = video, synthetic, float(p) if synthetic is not None else 0.0

    def batch(self, batch_size: int, g: torch.Generator):
        ts = []
        for _ in range(batch_size):
            if self.p > 0 and float(torch.rand((), generator=g)) < self.p:
                ts.append(self.synthetic.sample(g, augment=True)[0])
            else:
                ts.append(self.video.sample(g)[0])
        return tuple(torch.stack([t[k] for t in ts]) for k in range(3))
