"""Tier 1: the batched linearised backward. One forward, then the transposed network applied to
chunks of seeds at once (the batch dimension is the seed); no autograd while matching."""
from __future__ import annotations

import torch

from .linearisation import Linearisation
from .matching import DEFAULT_MEMORY, RowsTier, refuse_nonfinite
from .transpose import dense_rows


def seeds_per_chunk(model, hw: tuple[int, int], memory: int = DEFAULT_MEMORY, element_size: int = 4) -> int:
    """Seeds per pass of the whole-map transposed network within ``memory`` bytes: about four
    live maps of the widest full-resolution layer per seed."""
    widest = max(model.config.encoder[0], model.config.decoder[-1], 6)
    return max(1, int(memory) // (4 * widest * hw[0] * hw[1] * element_size))


class Tier1(RowsTier):
    """Whole-map rows for every query, ``chunk`` seeds per pass of the transposed network.

    ``memory`` bounds the working set of one chunk (the widest layer's gradients, a few times
    over); the chunk size follows from it and from the image size.
    """

    name = "t1"
    speed = 1

    def __init__(self, model, i1: torch.Tensor, i3: torch.Tensor, memory: int | None = None,
                 precision: str = "fp32"):
        self.lin = Linearisation(model, i1, i3)
        refuse_nonfinite(self.lin.out)  # not in Linearisation: the ONNX export traces that
        self.chunk = seeds_per_chunk(model, self.lin.hw, self.working_memory(memory, i1.device), i1.element_size())

    def rows(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [dense_rows(self.lin, queries[s:s + self.chunk]) for s in range(0, len(queries), self.chunk)]
        if not parts:
            empty = self.lin.out.new_zeros((0, 3) + self.lin.hw)
            return empty, empty
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
