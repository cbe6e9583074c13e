"""Moved stills as the pyramid's finer levels see them: warped back by a field that is almost right.

Coarse to fine (``mind_engine.engine.pyramid``) warps frame 1 back and frame 3 forward by half of
the coarser level's field with bilinear ``grid_sample``, and asks the network for the residual.
That field is off by a pixel or so, so the finest level sees two bilinearly resampled (slightly
blurred, unevenly so) frames that still move by a smooth residual of 0-3 px. ``AffineMotion``'s
frames are never resampled that way, and its disc of translations holds few such small motions.

Here a ``share`` of the samples is made like that: the texture is moved by the drawn affine motion
m (``AffineMotion``), and frames 1 and 3 are bilinear resamples of those frames at
``p -+ (m(p) + e(p)) / 2``, with ``e`` a smooth random error field (a 3x3 grid of vectors of length up
to ``max_error`` px, upsampled bicubically). Each bilinear tap is a pixel of the moved frame,
rendered from the texture itself, so no crop border enters. The middle frame is unchanged, and to
first order in the field's gradient (|grad e| <= ~0.05 here; exact up to that for translations,
off by ``A f / 4`` more with a linear part A) frame 1 shows the middle frame's q at
``q + e(q)/2`` and frame 3 at ``q - e(q)/2``: the residual motion is ``-e``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .warp import AffineMotion, apply_affine, sample_texture

ERROR_GRID = 3  # control points per side of the error field: smooth over the crop
MAX_ERROR = 3.0  # px: the longest error vector, so residual motions of 0-3 px (the small-motion probe's range)


class ResidualWarp(AffineMotion):
    """``AffineMotion`` whose ``share`` of samples are resampled as a pyramid level resamples them,
    with a residual motion of up to ``max_error`` px (``--warp-residual``)."""

    def __init__(self, *args, share: float = 0.5, max_error: float = MAX_ERROR, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 <= share <= 1 or max_error < 0:
            raise ValueError(f"ResidualWarp needs 0 <= share <= 1 and max_error >= 0; got {share}, {max_error}")
        self.share, self.max_error = float(share), float(max_error)

    def draw(self, g: torch.Generator) -> dict:
        p = super().draw(g)
        u = torch.rand(2, generator=g, dtype=torch.float64)
        vectors = torch.rand(2, ERROR_GRID, ERROR_GRID, generator=g) * 2 - 1
        scale = self.max_error * float(u[1]) / float(vectors.norm(dim=0).max().clamp(min=1e-6))
        p["error"] = vectors * scale if float(u[0]) < self.share else None
        return p

    def error_field(self, p: dict) -> torch.Tensor:
        """(H, W, 2) error of the estimated field, px (zeros for a plain sample)."""
        w, h = self.size
        if p.get("error") is None:
            return torch.zeros(h, w, 2, device=self.device)
        e = F.interpolate(p["error"][None].to(self.device), size=(h, w), mode="bicubic", align_corners=True)
        return e[0].permute(1, 2, 0)

    def _moved(self, p: dict, pts: torch.Tensor, sign: float) -> torch.Tensor:
        """Frame 1 (``sign`` +1) or 3 (-1) of the moved texture at integer (..., H, W, 2) pixels."""
        dev = self.device
        base, t, a = p["base"].to(dev), p["t"].to(dev), p["A"].to(dev)
        rel = pts - self.centre
        shown = rel + sign * (t + rel @ a.T) / 2
        return sample_texture(self.textures[p["index"]], apply_affine(base, self._origin(p).to(dev), shown))

    def _resampled(self, p: dict, field: torch.Tensor, sign: float) -> torch.Tensor:
        """Bilinear resample of frame 1 (+1) or 3 (-1) at ``p - sign * field / 2``."""
        x = self.grid - sign * field / 2
        x0 = torch.floor(x)
        f = x - x0
        taps = torch.stack([x0 + torch.tensor(o, device=self.device, dtype=x.dtype)
                            for o in ((0, 0), (1, 0), (0, 1), (1, 1))])
        v = self._moved(p, taps, sign)  # (4, 3, H, W)
        fx, fy = f[..., 0], f[..., 1]
        w = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])[:, None]
        return (v * w).sum(0)

    def render(self, p: dict):
        if p.get("error") is None:
            return super().render(p)
        frames = self.seen(p)[0]
        rel = self.grid - self.centre
        field = p["t"].to(self.device) + rel @ p["A"].to(self.device).T + self.error_field(p)
        return torch.stack([self._resampled(p, field, 1.0), frames[1], self._resampled(p, field, -1.0)]), None

    def correspondences(self, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if p.get("error") is None:
            return super().correspondences(p)
        e = self.error_field(p)
        return self.grid + e / 2, self.grid - e / 2
