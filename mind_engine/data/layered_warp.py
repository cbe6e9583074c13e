"""Layered scenes with occlusion, generated in torch on the training device (``AffineMotion``'s
geometry, one motion per layer).

The stage after plain affine motion: a background layer and 1-3 elliptical foreground layers,
each cut from its own texture and moving by its own affine motion, composited back to front, so
content appears, disappears and moves discontinuously at layer edges (the FlyingChairs idea).
Each layer follows ``mind_engine.data.warp``'s convention in the layer's own coordinates
(frame 1 at ``p + m(p)/2``, frame 3 at ``p - m(p)/2``), so a frame-2 pixel owned by layer l has
the exact correspondences of that layer's affine motion; it is ``valid`` where those lie inside
the frames and layer l is also the visible one there (not occluded in frame 1 or frame 3).

``mind_engine.data.layered`` makes richer scenes (star-shaped polygons, similarity paths,
photometric jitter) in numpy on the CPU, for evaluation and CPU training; this one keeps a GPU
busy.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .warp import AffineMotion

EDGE = 1.0  # px over which a layer's alpha ramps from 0 to 1 (anti-aliased edges)


class LayeredWarp(AffineMotion):
    """Triplets of a moving background and 1 to ``max_layers`` moving elliptical foreground
    layers. ``max_motion``/``max_linear`` bound every layer's motion as in ``AffineMotion``."""

    def __init__(self, size=(64, 64), split: str = "train", max_motion: float = 8.0, max_linear: float = 0.0,
                 device="cpu", images=None, max_side: int = 512, noise: float = 0.0, max_layers: int = 3,
                 log_share: float = 0.0):
        super().__init__(size, split, max_motion, max_linear, device, images, max_side, noise, log_share)
        if max_layers < 1:
            raise ValueError(f"max_layers must be at least 1, got {max_layers}")
        self.max_layers = int(max_layers)

    def draw(self, g: torch.Generator) -> dict:
        """A scene: the background's parameters, and per foreground layer its own parameters plus
        an ellipse (centre, semi-axes, angle) in frame-2 pixels."""
        n = 1 + int(torch.randint(self.max_layers, (1,), generator=g))
        w, h = self.size
        layers = []
        for _ in range(n):
            p = super().draw(g)
            u = torch.rand(5, generator=g, dtype=torch.float64)
            p["ellipse"] = (float(u[0]) * (w - 1), float(u[1]) * (h - 1), (0.15 + 0.3 * float(u[2])) * w,
                            (0.15 + 0.3 * float(u[3])) * h, math.pi * float(u[4]))
            layers.append(p)
        return {**super().draw(g), "layers": layers, "noise": self.noise * float(torch.rand((), generator=g))}

    def _alpha(self, p: dict, pts: torch.Tensor) -> torch.Tensor:
        """A layer's opacity at (..., 2) frame-2 points."""
        cx, cy, a, b, phi = p["ellipse"]
        dx, dy = pts[..., 0] - cx, pts[..., 1] - cy
        u = dx * math.cos(phi) + dy * math.sin(phi)
        v = -dx * math.sin(phi) + dy * math.cos(phi)
        r = torch.sqrt((u / a) ** 2 + (v / b) ** 2)  # 1 on the ellipse
        return ((1.0 - r) * min(a, b) / EDGE + 0.5).clamp(0.0, 1.0)

    def render(self, p: dict):
        """Frames (3, 3, H, W) and the index of the visible layer per frame (3, H, W) (0: background)."""
        frames, _ = self.seen(p)
        top = torch.zeros(frames.shape[0], *frames.shape[-2:], dtype=torch.long, device=self.device)
        for k, layer in enumerate(p["layers"], start=1):
            f, shown = self.seen(layer)
            alpha = self._alpha(layer, shown)[:, None]
            frames = alpha * f + (1 - alpha) * frames
            top = torch.where(alpha[:, 0] > 0.5, k, top)
        return frames, top

    def truth(self, p: dict, top: torch.Tensor) -> dict:
        """Exact correspondences of every frame-2 pixel through the layer that shows it, valid
        where they lie inside the frames and that layer is visible at both ends."""
        owner = top[1]
        corr = [torch.zeros(*owner.shape, 2, device=self.device) for _ in range(2)]
        for k, layer in enumerate([p] + p["layers"]):
            c1, c3 = self.correspondences(layer)
            mine = (owner == k)[..., None]
            corr[0], corr[1] = torch.where(mine, c1, corr[0]), torch.where(mine, c3, corr[1])
        w, h = self.size
        valid = self.inside(corr[0]) & self.inside(corr[1])
        for frame, c in ((0, corr[0]), (2, corr[1])):
            norm = torch.stack([c[..., 0] * (2.0 / (w - 1)) - 1, c[..., 1] * (2.0 / (h - 1)) - 1], -1)
            seen = F.grid_sample(top[frame][None, None].float(), norm[None], mode="nearest", align_corners=True)
            valid &= seen[0, 0].long() == owner
        return {"corr1": corr[0], "corr3": corr[1], "motion": corr[1] - corr[0], "valid": valid}
