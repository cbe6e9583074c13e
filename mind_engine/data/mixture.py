"""Mixing triplet sources into training batches."""
from __future__ import annotations

import torch

from .layered import LayeredMotion
from .synthetic import SyntheticMotion
from .video import VideoTriplets
from .warp import AffineMotion


class Mixture:
    """Draws a batch element from ``synthetic`` with probability ``p``, from ``layered`` with
    probability ``p_layered``, from ``warp`` (on the training device) with probability ``p_warp``
    and from ``video`` otherwise (all 0: video only, no extra random draws; one uniform draw per
    element otherwise, so ``p`` alone behaves as before).

    ``batch`` returns the triplet on ``device`` and the exact truth of its first elements (the
    warp ones, ``AffineMotion.batch``), or None when the batch holds none.
    """

    def __init__(self, video: VideoTriplets | None, synthetic: SyntheticMotion | None = None, p: float = 0.0,
                 layered: LayeredMotion | None = None, p_layered: float = 0.0, warp: AffineMotion | None = None,
                 p_warp: float = 0.0):
        self.video, self.synthetic, self.layered, self.warp = video, synthetic, layered, warp
        self.p = float(p) if synthetic is not None else 0.0
        self.p_layered = float(p_layered) if layered is not None else 0.0
        self.p_warp = float(p_warp) if warp is not None else 0.0
        fractions = (self.p, self.p_layered, self.p_warp)
        if min(fractions) < 0 or sum(fractions) > 1 + 1e-9:
            raise ValueError(f"the fractions of synthetic ({p}, --synthetic), layered ({p_layered}, --layered) and "
                             f"warp ({p_warp}, --warp) triplets must be >= 0 with a sum of at most 1")
        if video is None and sum(fractions) < 1 - 1e-9:
            raise ValueError("without video the synthetic, layered and warp fractions must sum to 1")

    def batch(self, batch_size: int, g: torch.Generator, device=None):
        kinds = []
        mixed = self.p + self.p_layered + self.p_warp > 0
        for _ in range(batch_size):
            u = float(torch.rand((), generator=g)) if mixed else 1.0
            kinds.append("synthetic" if u < self.p else "layered" if u < self.p + self.p_layered
                         else "warp" if u < self.p + self.p_layered + self.p_warp else "video")
        ts = []
        for kind in kinds:
            if kind == "synthetic":
                ts.append(self.synthetic.sample(g, augment=True)[0])
            elif kind == "layered":
                ts.append(self.layered.sample(g, augment=True, truth=False)[0])
            elif kind == "video":
                ts.append(self.video.sample(g)[0])
        cpu = tuple(torch.stack([t[k] for t in ts]).to(device) for k in range(3)) if ts else None
        n_warp = kinds.count("warp")
        if n_warp == 0:
            return cpu, None
        warped, truth = self.warp.batch(n_warp, g, truth=True)
        if cpu is None:
            return warped, truth
        return tuple(torch.cat([w, c.to(w.device)]) for w, c in zip(warped, cpu)), truth
