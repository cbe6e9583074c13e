"""What a match is (docs/architecture.md section 2): query grids, search boxes, and rows -> points
and scores; and what every tier is (``RowsTier``: its facts, and matching from its rows).

Arguments arrive checked (``mind_engine.checks``, above the engine): nothing here re-checks them.
"""
from __future__ import annotations

import torch

DEFAULT_MEMORY = 1 << 30  # bytes of working memory per chunk of seeds


def grid_axes(hw: tuple[int, int], stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows ``ys`` and columns ``xs`` of the query grid of ``stride``: every ``stride`` pixels
    from ``stride // 2``, the centre of the first cell (empty when that lies outside the image)."""
    first = stride // 2
    return torch.arange(first, max(hw[0], first), stride), torch.arange(first, max(hw[1], first), stride)


def grid_queries(hw: tuple[int, int], stride: int) -> torch.Tensor:
    """Semi-dense queries: (N, 2) int64 (x, y) on ``grid_axes``, rows first."""
    ys, xs = grid_axes(hw, stride)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], 1)


def search_boxes(queries: torch.Tensor, radius: int | None, hw: tuple[int, int]) -> torch.Tensor:
    """(N, 4) half-open [x0, y0, x1, y1) boxes the peak is searched in: the square of ``radius``
    around each query, clipped to the caller's image (the whole image for radius None)."""
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


def refuse_nonfinite(out: torch.Tensor) -> None:
    """The network's output at a pair is finite: otherwise every row, and so every match, is garbage."""
    if not torch.isfinite(out).all():
        raise ValueError("the model's output at this image pair is not finite (NaN or inf): a broken or "
                         "diverged model, or weights too large for float32; nothing computed from it would mean anything")


class RowsTier:
    """Base of the tiers that compute whole rows: matching is rows -> ``reduce_rows`` per image.

    Each tier class carries its facts, which ``tiers`` (the registry), the argument rules and the
    memory estimate read: its ``name`` and ``backend`` (a tier registers under both), ``speed``
    (``"auto"`` is the fastest exact tier of a backend), the ``precisions`` it can store its state
    in, and whether it is ``windowed`` (its working memory is per-query windows, not result rows).
    Every tier is built as ``Tier(model, i1, i3, memory=None, precision="fp32")``.
    """

    name = "?"
    backend = "torch"
    speed = 0
    precisions = ("fp32",)
    windowed = False

    @classmethod
    def working_memory(cls, memory: int | None, device: torch.device) -> int:
        """Bytes of working memory per chunk of seeds: ``memory``, else this tier's default."""
        return int(memory or DEFAULT_MEMORY)

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
