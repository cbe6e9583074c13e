"""The transposed network: MindNet's backward at a linearisation, written once over the model's
layer list and skip table (``MindNet.config``), for a batch of seeds at a time:

    conv 3x3          -> conv_transpose2d with the same weight (padding 1)
    convtranspose 4x4 -> conv2d with the same weight (stride 2, padding 1)
    PReLU             -> multiply by the cached slope map
    maxpool           -> nearest upsample times the cached argmax mask
    concat            -> split

``backward_walk`` is generic over the tensor operations: ``DenseOps`` (here) runs it on whole
maps (tier 1, the exported graph); ``mind_engine.engine.windows.WindowOps`` runs it on
per-query crops (tiers 2 and 3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .linearisation import Linearisation


def conv_reach(convs) -> int:
    """How far a stack of stride-1 convs reaches, in pixels: the sum of their kernels'
    half-widths (3 convs 3x3: 3)."""
    return sum(conv.kernel_size[0] // 2 for conv in convs)


def backward_walk(model, lin: Linearisation, ops, g):
    """The transposed network, from the gradient ``g`` at the output (what ``ops.seed`` made)
    to ``ops.input``'s result. Biases play no part: rows do not depend on them.

    Levels: level l has 1/2**l of the input's resolution; encoder block k works at level k and
    hands its pooled output to level k + 1; decoder block k works at level depth - 1 - k.
    ``reach`` tells a windowed implementation where a conv's gradient is wanted: ``None`` on the
    decoder, on all of its support (it spreads from the seed); on the encoder only where the rows
    need it, which is the need at the block's input grown by ``reach`` pixels, the reach of the
    block's convs below this one. ``to_encoder(g, k)`` hands a gradient to the pooled output of
    encoder block k.
    """
    cfg = model.config
    g = ops.conv_t(g, model.head.weight, 0, reach=None)
    skip_grads = {}
    for k in reversed(range(cfg.depth)):  # the finest decoder block back to the coarsest
        block, level = model.decoder[k], cfg.depth - 1 - k
        for j in reversed(range(len(block.convs))):
            g = ops.mul(g, lin.slopes[block.acts[j]], level)
            if j:
                g = ops.conv_t(g, block.convs[j].weight, level, reach=None)
            else:
                g = ops.down(g, block.convs[0].weight, level)  # to level + 1
        if k in cfg.skips:  # the input was cat(previous decoder output, pooled skip)
            g, skip_grads[cfg.skip_source(k)] = ops.split(g, cfg.decoder[k - 1])
    g = ops.to_encoder(g, cfg.depth - 1)  # decoder block 0 read the last encoder block
    for k in reversed(range(cfg.depth)):
        if k in skip_grads:
            g = ops.add(g, ops.to_encoder(skip_grads[k], k))
        block, last = model.encoder[k], len(model.encoder[k].convs) - 1
        # to level k, through the pool and the last PReLU at once
        g = ops.unpool_mul(g, lin.pool_masks[block.pool], lin.slopes[block.acts[last]], k)
        for j in reversed(range(len(block.convs))):
            if j < last:
                g = ops.mul(g, lin.slopes[block.acts[j]], k)
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

    def unpool_mul(self, g, mask, slope, level):
        """Maxpool's backward (nearest upsample times the argmax mask), then a PReLU's."""
        return F.interpolate(g, scale_factor=2, mode="nearest") * mask * slope

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

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, i1: torch.Tensor, i3: torch.Tensor, queries: torch.Tensor):
        return dense_rows(Linearisation(self.model, i1, i3), queries)
