"""Sparse matches on a regular query grid -> a dense motion field, robustly (for ``pyramid``).

Coarse-to-fine matching needs, after each level, a motion field at every pixel of the middle
frame, from the matches of a grid of queries of which some are wrong (occlusions, textureless
regions, repeated texture). The interpolation chosen here works on the grid itself, where the
neighbours of a cell are known without a search:

1. **Outliers out**: a kept vector that differs from the component-wise median of its kept 3 x 3
   grid neighbours by more than ``OUTLIER_PX`` (plus a quarter of that median's length: large
   motions vary more in pixels) is dropped. A median of nine rejects up to four wrong neighbours,
   where a mean is pulled by one.
2. **Holes filled** by normalised convolution (Knutsson and Westin, 1993): a Gaussian-weighted
   mean of the kept vectors around each cell, divided by the sum of the weights that were kept,
   widened (sigma doubled) until every cell has support; a grid without one kept vector gives
   the zero field (no motion known: the next level searches around the query).
3. **Upsampled** bilinearly from the cell centres to every pixel (``grid_sample``, edges
   replicated).

Not edge-aware: a motion discontinuity is smoothed across about one grid cell at each level,
which the finer levels' searches (radius ``levels.RESIDUAL_RADIUS``) must absorb; where the
two sides move by more than that, the finer levels cannot recover the boundary.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

OUTLIER_PX = 1.5  # how far a vector may stray from its neighbours' median before it is dropped
FILL_SIGMA = 1.0  # first Gaussian of the normalised convolution, in grid cells


def reject_outliers(vectors: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """(gh, gw, 2) vectors and (gh, gw) bool kept -> kept, less the vectors far from the median of
    their kept 3 x 3 neighbours (a vector with no kept neighbour stays: nothing contradicts it)."""
    gh, gw, _ = vectors.shape
    v = torch.where(kept[..., None], vectors, float("nan")).permute(2, 0, 1)[None]  # (1, 2, gh, gw)
    patches = F.unfold(F.pad(v, (1, 1, 1, 1), value=float("nan")), 3).view(2, 9, gh, gw)
    centre = torch.zeros(9, dtype=torch.bool)
    centre[4] = True
    neighbours = patches[:, ~centre]
    med = neighbours.nanmedian(1).values.permute(1, 2, 0)  # (gh, gw, 2), NaN without neighbours
    dev = (vectors - med).norm(dim=-1)
    far = dev > OUTLIER_PX + 0.25 * med.norm(dim=-1)
    return kept & ~(far & torch.isfinite(dev))


def fill_holes(vectors: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Normalised convolution: (gh, gw, 2) vectors valid where ``kept`` -> a (gh, gw, 2) field with
    the kept vectors unchanged and every other cell the Gaussian-weighted mean of kept ones."""
    gh, gw, _ = vectors.shape
    if not kept.any():
        return torch.zeros_like(vectors)
    w = kept.to(vectors.dtype)[None, None]
    v = torch.where(kept[..., None], vectors, 0.0).permute(2, 0, 1)[None] * w
    out = vectors.clone()
    todo = ~kept
    sigma = FILL_SIGMA
    while todo.any():
        radius = int(math.ceil(3 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=vectors.dtype)
        g = torch.exp(-x ** 2 / (2 * sigma ** 2))
        num, den = v, w
        for kernel, pad in ((g.view(1, 1, 1, -1), (radius, radius, 0, 0)), (g.view(1, 1, -1, 1), (0, 0, radius, radius))):
            num = F.conv2d(F.pad(num, pad), kernel.expand(2, 1, *kernel.shape[2:]), groups=2)
            den = F.conv2d(F.pad(den, pad), kernel)
        have = todo & (den[0, 0] > 1e-6)
        out[have] = (num[0] / den[0].clamp(min=1e-12)).permute(1, 2, 0)[have]
        todo &= ~have
        sigma *= 2
    return out


def grid_to_pixels(grid_field: torch.Tensor, first: int, stride: int, hw: tuple[int, int]) -> torch.Tensor:
    """(gh, gw, 2) vectors at the grid cells' centres (pixel ``first + i * stride``) -> (h, w, 2) at
    every pixel, bilinear, edges replicated."""
    h, w = hw
    gh, gw, _ = grid_field.shape
    ys = (torch.arange(h, dtype=grid_field.dtype) - first) / stride
    xs = (torch.arange(w, dtype=grid_field.dtype) - first) / stride
    # grid_sample's normalised coordinates, align_corners=True: -1 is cell 0, +1 the last cell
    ny = 2 * ys / max(gh - 1, 1) - 1 if gh > 1 else torch.zeros_like(ys)
    nx = 2 * xs / max(gw - 1, 1) - 1 if gw > 1 else torch.zeros_like(xs)
    gy, gx = torch.meshgrid(ny, nx, indexing="ij")
    sample = torch.stack([gx, gy], -1)[None]
    out = F.grid_sample(grid_field.permute(2, 0, 1)[None], sample, mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out[0].permute(1, 2, 0)


def densify(vectors: torch.Tensor, kept: torch.Tensor, first: int, stride: int, hw: tuple[int, int]) -> torch.Tensor:
    """The three steps of the module docstring: grid vectors (gh, gw, 2) with their kept mask ->
    the dense (h, w, 2) field, float32 on the CPU."""
    vectors, kept = vectors.float().cpu(), kept.cpu() & torch.isfinite(vectors.cpu()).all(-1)
    kept = reject_outliers(vectors, kept)
    return grid_to_pixels(fill_holes(vectors, kept), first, stride, hw)
