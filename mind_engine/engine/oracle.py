"""Tier 0, the oracle: the paper's matcher, one ``torch.autograd.grad`` per query.

Slow by design (one full backward per query); every faster tier is tested against it. It needs
autograd, so it turns it on for itself: it works under the caller's ``torch.no_grad()`` and
``torch.inference_mode()`` too (inference tensors are cloned into ordinary ones).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from .matching import RowsTier, refuse_nonfinite


@contextmanager
def _autograd():
    """Autograd on, whatever the caller turned off."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


class Tier0(RowsTier):
    """Runs the forward once with autograd, then one backward per query seed."""

    name = "t0"

    def __init__(self, model, i1: torch.Tensor, i3: torch.Tensor, memory: int | None = None,
                 precision: str = "fp32"):
        """``memory`` and ``precision`` are every tier's arguments; one backward per query needs
        no budget and runs in float32 only."""
        with _autograd():
            self.i1 = i1.detach().clone().requires_grad_(True)
            self.i3 = i3.detach().clone().requires_grad_(True)
            self.out = model(self.i1, self.i3)
        refuse_nonfinite(self.out)

    def rows(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 2) int (x, y) queries -> rows g1, g3, each (N, 3, H, W): d sum_c out[c, y, x] / d I."""
        g1, g3 = [], []
        with _autograd():
            for x, y in queries.tolist():
                a, b = torch.autograd.grad(self.out[0, :, y, x].sum(), (self.i1, self.i3), retain_graph=True)
                g1.append(a[0])
                g3.append(b[0])
        empty = self.i1.new_zeros((0,) + self.i1.shape[1:])
        return (torch.stack(g1) if g1 else empty), (torch.stack(g3) if g3 else empty)
