"""MindNet linearised at one image pair: the state its backward needs, and the transposed network.

The network is piecewise linear in its input except through PReLU and maxpool, whose backward
only needs what the forward decided: each PReLU's slope map (1 where its input was > 0, else
its slope a, as torch's own prelu backward) and each maxpool's argmax. With those cached, a
Jacobian row is the transposed network applied to a seed, and a batch of seeds is a batch:

    conv 3x3          -> conv_transpose2d with the same weight (padding 1)
    convtranspose 4x4 -> conv2d with the same weight (stride 2, padding 1)
    PReLU             -> multiply by the cached slope map
    maxpool           -> nearest upsample times the cached argmax mask
    concat            -> split

``backward_walk`` is that transposed network, written once over the model's layer list. It is
generic over the tensor operations: ``DenseOps`` (here) runs it on whole maps (tier 1, the
exported graph); ``mind_engine.tier2.WindowOps`` runs it on per-query crops.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .model import MindNet, check_shape

SKIP_LEVELS = (3, 2, 1)  # decoder blocks 1, 2, 3 (D4, D3, D2) take the pooled C4, C3, C2


class Linearisation:
    """One forward pass of ``model`` on (i1, i3) that keeps each PReLU's slope map and each
    maxpool's argmax mask (both (C, H, W), batch of one image pair).

    enc_slopes[k][j], dec_slopes[k][j]: the slope map of conv j of encoder / decoder block k.
    pool_masks[k]: 1 at the pixel each 2x2 window of encoder block k passed on, else 0.
    out: the interpolated frame (1, 3, H, W), equal to ``model(i1, i3)``.
    """

    def __init__(self, model: MindNet, i1: torch.Tensor, i3: torch.Tensor):
        check_shape(i1, i3)
        if i1.shape[0] != 1:
            raise ValueError(f"a linearisation is of one image pair; got a batch of {i1.shape[0]}")
        self.model = model
        self.hw = tuple(i1.shape[-2:])
        self.enc_slopes, self.dec_slopes, self.pool_masks = [], [], []
        with torch.no_grad():
            x = torch.cat([i1, i3], 1) - 0.5
            skips = []
            for block in model.encoder:
                x = self._convs(block, x, self.enc_slopes)
                pooled, idx = F.max_pool2d(x, 2, 2, return_indices=True)
                mask = torch.zeros_like(x).flatten(2).scatter_(2, idx.flatten(2), 1.0).view_as(x)
                self.pool_masks.append(mask[0])
                x = pooled
                skips.append(x)
            x = self._convs(model.decoder[0], skips[4], self.dec_slopes)
            for block, level in zip(model.decoder[1:4], SKIP_LEVELS):
                x = self._convs(block, torch.cat([x, skips[level]], 1), self.dec_slopes)
            x = self._convs(model.decoder[4], x, self.dec_slopes)
            self.out = model.head(x) + 0.5

    @staticmethod
    def _convs(block, x, slopes_out: list) -> torch.Tensor:
        maps = []
        for conv, act in zip(block.convs, block.acts):
            pre = conv(x)
            a = act.weight.view(1, -1, 1, 1).to(pre.dtype)
            maps.append(torch.where(pre > 0, torch.ones_like(pre), a.expand_as(pre))[0])
            x = F.prelu(pre, act.weight)
        slopes_out.append(maps)
        return x

    def nbytes(self) -> int:
        """Memory the cached state holds."""
        maps = [m for block in self.enc_slopes + self.dec_slopes for m in block] + self.pool_masks
        return sum(m.numel() * m.element_size() for m in maps)


def conv_reach(convs) -> int:
    """How far a stack of stride-1 convs reaches, in pixels: the sum of their kernels'
    half-widths (3 convs 3x3: 3)."""
    return sum(conv.kernel_size[0] // 2 for conv in convs)


def backward_walk(model: MindNet, lin: Linearisation, ops, g):
    """The transposed network, from the gradient ``g`` at the output (what ``ops.seed`` made)
    to ``ops.input``'s result. Biases play no part: rows do not depend on them.

    ``reach`` tells a windowed implementation where a conv's gradient is wanted: ``None`` on the
    decoder, on all of its support (it spreads from the seed); on the encoder only where the rows
    need it, which is the need at the block's input grown by ``reach`` pixels, the reach of the
    block's convs below this one. ``to_encoder(g, k)`` hands a gradient to the pooled output of
    encoder block k.
    """
    g = ops.conv_t(g, model.head.weight, 0, reach=None)
    skip_grads = {}
    for k in reversed(range(5)):  # D1 (block 4) back to D5 (block 0)
        block, level = model.decoder[k], 4 - k  # block k's output is at level 4 - k
        for j in reversed(range(3)):
            g = ops.mul(g, lin.dec_slopes[k][j], level)
            if j:
                g = ops.conv_t(g, block.convs[j].weight, level, reach=None)
            else:
                g = ops.down(g, block.convs[0].weight, level)  # to level 5 - k
        if 1 <= k <= 3:  # input was cat(previous decoder output, pooled skip)
            g, skip_grads[SKIP_LEVELS[k - 1]] = ops.split(g, model.config.decoder[k - 1])
    g = ops.to_encoder(g, 4)  # D5 read the pooled C5
    for k in reversed(range(5)):  # C5 back to C1
        if k in skip_grads:
            g = ops.add(g, ops.to_encoder(skip_grads[k], k))
        block = model.encoder[k]
        g = ops.unpool(g, lin.pool_masks[k], k)  # to level k
        for j in reversed(range(3)):
            g = ops.mul(g, lin.enc_slopes[k][j], k)
            if k == 0 and j == 0:
                return ops.input(g, block.convs[0].weight)
            g = ops.conv_t(g, block.convs[j].weight, k, reach=conv_reach(block.convs[:j]))
        g = ops.to_encoder(g, k - 1)  # block k's input is block k-1's pooled output
    raise AssertionError("unreachable")


class DenseOps:
    """The transposed network's operations on whole maps: one (B, C, h, w) tensor per node."""

    def __init__(self, hw: tuple[int, int]):
        self.hw = hw

    def seed(self, queries: torch.Tensor, dtype, device) -> torch.Tensor:
        """One-hot maps at each (x, y) query on all three output channels: d(sum_c out[c,y,x])."""
        h, w = self.hw
        n = queries.shape[0]
        flat = (queries[:, 1] * w + queries[:, 0]).to(device)
        g = torch.zeros(n, 1, h * w, dtype=dtype, device=device)
        g.scatter_(2, flat.view(n, 1, 1), 1.0)
        return g.view(n, 1, h, w).expand(n, 3, h, w)

    def conv_t(self, g, weight, level, reach):
        return F.conv_transpose2d(g, weight, padding=1)

    def down(self, g, weight, level):
        return F.conv2d(g, weight, stride=2, padding=1)

    def mul(self, g, maps, level):
        return g * maps

    def split(self, g, c):
        return g[:, :c], g[:, c:]

    def to_encoder(self, g, level):
        return g

    def add(self, a, b):
        return a + b

    def unpool(self, g, mask, level):
        return F.interpolate(g, scale_factor=2, mode="nearest") * mask

    def input(self, g, weight):
        """Rows d/dI1 and d/dI3: the first conv's transpose, split into the two images."""
        rows = F.conv_transpose2d(g, weight, padding=1)
        return rows[:, :3], rows[:, 3:]


def dense_rows(lin: Linearisation, queries: torch.Tensor):
    """Exact rows (g1, g3), each (N, 3, H, W), for (N, 2) int (x, y) queries, all in one batch."""
    ops = DenseOps(lin.hw)
    out = lin.out
    with torch.no_grad():
        return backward_walk(lin.model, lin, ops, ops.seed(queries, out.dtype, out.device))


class LinearisedMind(nn.Module):
    """Images and queries in, Jacobian rows out, with plain tensor operations and no autograd:
    the tier-1 graph as one module, for export (ONNX, TensorRT)."""

    def __init__(self, model: MindNet):
        super().__init__()
        self.model = model

    def forward(self, i1: torch.Tensor, i3: torch.Tensor, queries: torch.Tensor):
        return dense_rows(Linearisation(self.model, i1, i3), queries)
