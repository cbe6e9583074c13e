"""Which grid queries of each coarse pyramid level the caller's queries need (issue 39): with a
handful of queries, the coarse levels match only around them instead of on their whole grids.

A level's field reaches a finer query through a short chain, each link local:

1. the finer level matches query q on its warped pair within ``reach`` pixels of q (its search
   radius plus the score window, ``SCORE_HALF``); a warped pixel p reads the field at p only;
2. the finer field at p is the coarser field, bilinear, at (p - 0.5) / 2 (``upsample_field``);
3. a coarse pixel's field is the grid's, bilinear from the four nearest cells (``densify``'s
   ``grid_to_pixels``), and a cell's kept vector survives or falls by the median of its 3 x 3
   neighbours (``reject_outliers``): one cell more on each side;
4. and ``CONTEXT_CELLS`` more on each side, for what the chain above does not count: the network
   reads its whole receptive field, so a finer level's rows near q also depend (weakly) on the
   warped pair farther away.

The needed cells of a level are those; the level's own needed cells are the queries whose
windows the next coarser level must serve, so the rule is applied from the finest level up.
Cells outside are not matched: the field there is filled from the matched ones (``densify``'s
normalised convolution), and the best half by score (``pyramid.KEEP_SCORE``) is taken among the
matched cells. What this leaves equal to the dense run is in ``pyramid``'s docstring.
"""
from __future__ import annotations

import torch

from .levels import LEVEL_STRIDE
from .matching import grid_axes

# Extra grid cells on each side for the network's context. The bundled model on bench's 384x128
# test pair, sets of 1, 10 and 100 random grid queries against the dense run's matches there
# (111 in all; 2026-12-07, busy 2-core EPYC): 0 cells gave 101 identical and 109 within 1 px,
# 2 cells 106 and 108, 4 cells 110 and 111 (another draw, 4 cells: 103 and 109; what remains is
# mostly the keep threshold, see ``pyramid``). Each cell is 4 px of the coarse level.
CONTEXT_CELLS = 4


def _cell_range(lo: torch.Tensor, hi: torch.Tensor, size: int, cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coarse pixel intervals [lo, hi] (float) on one axis of a level ``size`` pixels long -> the
    first and last index (inclusive) of the ``cells`` grid cells that bilinear interpolation there
    reads, grown by one (the outlier test) and ``CONTEXT_CELLS``, clamped to the grid."""
    first = LEVEL_STRIDE // 2
    lo_px = lo.floor().clamp(0, size - 1)
    hi_px = hi.ceil().clamp(0, size - 1)
    grow = 1 + CONTEXT_CELLS
    a = ((lo_px - first) / LEVEL_STRIDE).floor() - grow
    b = ((hi_px - first) / LEVEL_STRIDE).ceil() + grow
    return a.clamp(0, cells - 1).long(), b.clamp(0, cells - 1).long()


def needed_cells(points: torch.Tensor, reach: int, hw: tuple[int, int]) -> torch.Tensor:
    """(gh, gw) bool over the ``LEVEL_STRIDE`` grid of a coarse level of size ``hw``: the cells
    whose field the finer level's ``points`` (N, 2) (x, y) read within ``reach`` of each point
    (the module docstring's rule)."""
    ys, xs = grid_axes(hw, LEVEL_STRIDE)
    gh, gw = len(ys), len(xs)
    mask = torch.zeros(gh, gw, dtype=torch.bool)
    if gh * gw == 0 or len(points) == 0:
        return mask
    p = points.double()
    lo, hi = (p - reach - 0.5) / 2, (p + reach - 0.5) / 2  # the finer window in coarse pixels
    x0, x1 = _cell_range(lo[:, 0], hi[:, 0], hw[1], gw)
    y0, y1 = _cell_range(lo[:, 1], hi[:, 1], hw[0], gh)
    corners = torch.zeros(gh + 1, gw + 1, dtype=torch.long)  # a 2-D difference array of the rectangles
    for ys_, xs_, sign in ((y0, x0, 1), (y0, x1 + 1, -1), (y1 + 1, x0, -1), (y1 + 1, x1 + 1, 1)):
        corners.index_put_((ys_, xs_), torch.full_like(ys_, sign), accumulate=True)
    return corners.cumsum(0).cumsum(1)[:gh, :gw] > 0


def needed_grids(queries: torch.Tensor, hws: list[tuple[int, int]], reaches: list[float]) -> list[torch.Tensor | None]:
    """Per level (finest first) the bool mask of its grid queries to match: None at level 0 (it
    matches the caller's ``queries``, or reads them from level 1's field); for each coarser level
    k, the cells that level k - 1's queries need within ``reaches[k - 1]`` pixels of each
    (``needed_cells``)."""
    masks: list[torch.Tensor | None] = [None]
    points = queries.float()
    for k in range(1, len(hws)):
        mask = needed_cells(points, reaches[k - 1], hws[k])
        masks.append(mask)
        ys, xs = grid_axes(hws[k], LEVEL_STRIDE)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points = torch.stack([gx[mask], gy[mask]], 1).float()
    return masks
