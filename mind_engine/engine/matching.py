"""What a match is (docs/architecture.md section 2): query grids, search boxes, and rows -> points and scores."""
from __future__ import annotations

import torch

from ..checks import check_queries, check_radius, check_stride


def grid_axes(hw: tuple[int, int], stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows ``ys`` and columns ``xs`` of the query grid of ``stride``: every ``stride`` pixels
    from ``stride // 2``, the centre of the first cell (empty when that lies outside the image)."""
    first = stride // 2
    return torch.arange(first, max(hw[0], first), stride), torch.arange(first, max(hw[1], first), stride)


def grid_queries(hw: tuple[int, int], stride: int) -> torch.Tensor:
    """Semi-dense queries: (N, 2) int64 (x, y) on ``grid_axes``, rows first."""
    ys, xs = grid_axes(hw, check_stride(stride))
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], 1)


def user_queries(points, hw: tuple[int, int]) -> torch.Tensor:
    """Caller's (N, 2) (x, y) points -> int64 pixel positions, rounded (``checks.check_queries``:
    out-of-image ones rejected, an empty set allowed)."""
    return torch.from_numpy(check_queries(points, hw)).long()


def search_boxes(queries: torch.Tensor, radius: int | None, hw: tuple[int, int]) -> torch.Tensor:
    """(N, 4) half-open [x0, y0, x1, y1) boxes the peak is searched in: the square of ``radius``
    around each query, clipped to the caller's image (the whole image for radius None)."""
    radius = check_radius(radius)
    h, w = hw
    n = queries.shape[0]
    if radius is None:
        return torch.tensor([0, 0, w, h]).repeat(n, 1)
    x, y = queries[:, 0], queries[:, 1]
    return torch.stack([(x - radius).clamp(min=0), (y - radius).clamp(min=0),
                        (x + radius + 1).clamp(max=w), (y + radius + 1).clamp(max=h)], 1)


def reduce_rows(rows: torch.Tensor, boxes: torch.Tensor, hw: tuple[int, int], impl: str = "auto"):
    """Rows of the padded network input (N,3,Hp,Wp) -> (idx, peak, score) in the caller's frame.

    The rows are cropped to the caller's (H, W) first, so padding never wins the argmax and
    the score window is clipped to the caller's image.
    """
    from ..ops import match_reduce

    h, w = hw
    return match_reduce(rows[:, :, :h, :w], boxes.to(rows.device), impl=impl)


class RowsTier:
    """Base of the tiers that compute whole rows: matching is rows -> ``reduce_rows`` per image."""

    name = "?"

    def rows(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def match_rows(self, queries: torch.Tensor, boxes: torch.Tensor, hw: tuple[int, int]):
        """Rows that are exact wherever matching reads them: inside each query's search box grown
        by the score window (a windowed tier computes only that). Here, the whole rows."""
        return self.rows(queries)

    def match(self, queries: torch.Tensor, boxes: torch.Tensor, hw: tuple[int, int]):
        """(idx, peak, score) for image 1 and for image 3, each a tuple of (N,) tensors."""
        g1, g3 = self.rows(queries)
        return reduce_rows(g1, boxes, hw), reduce_rows(g3, boxes, hw)
