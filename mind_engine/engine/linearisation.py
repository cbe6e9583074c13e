"""MindNet linearised at one image pair: the state its backward needs.

The network is piecewise linear in its input except through PReLU and maxpool, whose backward
only needs what the forward decided: each PReLU's slope map (1 where its input was > 0, else
its slope a, as torch's own prelu backward) and each maxpool's argmax. With those cached, a
Jacobian row is the transposed network (``mind_engine.engine.transpose``) applied to a seed.

The state is recorded while the model's own ``forward`` runs, so the linearisation follows
whatever topology the model has: the forward hands each PReLU's and maxpool's input to this
call's ``record`` (``MindNet.forward(..., record=)``). Nothing is attached to the modules, so
any number of threads can linearise one shared model at once, each seeing only its own forward
(forward hooks on a shared module would fire for every thread's forward).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Linearisation:
    """One forward pass of ``model`` on (i1, i3) that keeps each PReLU's slope map and each
    maxpool's argmax mask (both (C, H, W), batch of one image pair).

    slopes[act]: the slope map of the PReLU module ``act``.
    pool_masks[pool]: 1 at the pixel each window of the maxpool module ``pool`` passed on, else 0.
    out: the interpolated frame (1, 3, H, W), equal to ``model(i1, i3)``.
    """

    def __init__(self, model: nn.Module, i1: torch.Tensor, i3: torch.Tensor):
        model.check_input(i1, i3)
        if i1.shape[0] != 1:
            raise ValueError(f"a linearisation is of one image pair; got a batch of {i1.shape[0]}")
        self.model = model
        self.hw = tuple(i1.shape[-2:])
        self.slopes: dict[nn.PReLU, torch.Tensor] = {}
        self.pool_masks: dict[nn.MaxPool2d, torch.Tensor] = {}
        with torch.no_grad():
            self.out = model(i1, i3, record=self._record)

    def _record(self, module: nn.Module, x: torch.Tensor) -> None:
        if isinstance(module, nn.PReLU):
            a = module.weight.view(1, -1, 1, 1).to(x.dtype)
            self.slopes[module] = torch.where(x > 0, torch.ones_like(x), a.expand_as(x))[0]
        else:
            _, idx = F.max_pool2d(x, module.kernel_size, module.stride, return_indices=True)
            mask = torch.zeros_like(x).flatten(2).scatter_(2, idx.flatten(2), 1.0).view_as(x)
            self.pool_masks[module] = mask[0]

    def maps(self) -> list[torch.Tensor]:
        """Every cached map: the slope maps, then the pool masks."""
        return list(self.slopes.values()) + list(self.pool_masks.values())

    def nbytes(self) -> int:
        """Memory the cached state holds."""
        return sum(m.numel() * m.element_size() for m in self.maps())
