"""Windows: per-query crops of the transposed network's maps, and where each level needs them.

Two facts make most of tier 1's work vanish (docs/architecture.md):

- support: from its seed, a gradient spreads only a few pixels per decoder layer, so on the
  decoder each seed is carried on a crop that grows exactly by each layer's footprint;
- need: the match reads the rows only inside the search box (and the score window around the
  peak), so each encoder level needs its gradient only on that region grown by the receptive
  field of the layers below it (``need_windows``), and the coarse levels, smaller than that,
  stay dense.

A window is a batch of crops, one per seed, all of one size, with per-seed origins. Values
outside a window are either exactly zero (decoder crops cover the support) or not needed
(encoder crops cover the need); a crop may hold inexact values near its rim where neither
matters, which is why every step keeps to the rules below. Crops are moved between places with
``window_gather`` and multiplied by cached maps with ``window_mul``; the last layer's backward
and the matching reduction are fused (``input_backward_match``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..ops._torch_impl import SCORE_HALF
from .transpose import conv_reach

SCORE_REACH = (SCORE_HALF, SCORE_HALF - 1)  # how far the score window reaches before and after a peak


@dataclass
class Window:
    """Crops t (B, C, h, w) whose top-left pixels sit at o (B, 2) (x, y) of their level."""

    t: torch.Tensor
    o: torch.Tensor


def encoder_reach(model) -> list[int]:
    """How far each encoder block's convs reach, in pixels at the block's input."""
    return [conv_reach(block.convs) for block in model.encoder]


def need_windows(boxes: torch.Tensor, hw: tuple[int, int], padded_hw: tuple[int, int], reach: list[int],
                 margin: tuple[int, int] = SCORE_REACH):
    """Per seed, the inclusive region [lo, hi] ((B, 2) each, as (x, y)) of each level on which the
    gradient at the encoder's input there is needed. Level 0 (the rows): the search box grown by
    ``margin`` pixels before and after (the score window's reach, or none), clipped to the
    caller's image ``hw``. Level k + 1 (block k's pooled output): level k's region grown by block
    k's convs' ``reach`` (clipped to the padded map the network sees), halved by the 2x2 pool.
    """
    lo = (boxes[:, :2] - margin[0]).clamp(min=0)
    hi = torch.minimum(boxes[:, 2:] - 1 + margin[1], torch.tensor([hw[1] - 1, hw[0] - 1]))
    out = [(lo, hi)]
    for k, r in enumerate(reach):
        lo, hi = (t // 2 for t in _grow(lo, hi, r, (padded_hw[0] >> k, padded_hw[1] >> k)))
        out.append((lo, hi))
    return out


def _grow(lo: torch.Tensor, hi: torch.Tensor, r: int, extent: tuple[int, int]):
    """Regions [lo, hi] grown by r pixels on every side, clipped to a level of size extent (h, w)."""
    return (lo - r).clamp(min=0), torch.minimum(hi + r, torch.tensor([extent[1] - 1, extent[0] - 1]))


def score_inside(idx: torch.Tensor, boxes: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(B,) bool: whether, for both images, the score window around the peak at flat index idx
    (2, B), clipped to the image ``hw``, lies inside the seed's box: then rows computed on the
    box alone give the exact score."""
    H, W = hw
    b = boxes.to(idx.device).long()
    x, y = idx % W, idx // W
    half = SCORE_HALF
    return (((x - half).clamp(min=0) >= b[:, 0]) & ((y - half).clamp(min=0) >= b[:, 1])
            & ((x + half).clamp(max=W) <= b[:, 2]) & ((y + half).clamp(max=H) <= b[:, 3])).all(0)


def fit(lo: torch.Tensor, hi: torch.Tensor, extent: tuple[int, int]):
    """One window size for a batch of regions [lo, hi] and each region's origin: the size is the
    largest region's (at most the level's extent), the origins keep every crop inside the level."""
    ext = torch.tensor(extent[::-1])  # (W, H) at this level
    size = torch.minimum((hi - lo + 1).amax(0), ext)
    origin = torch.minimum(lo, ext - size).clamp(min=0)
    return origin, (int(size[1]), int(size[0]))


class WindowOps:
    """The transposed network's operations on windows (see ``backward_walk``)."""

    def __init__(self, padded_hw: tuple[int, int], need, kernels, device, products: dict | None = None):
        self.ext = [(padded_hw[0] >> k, padded_hw[1] >> k) for k in range(len(need))]
        self.need = need  # per level: (lo, hi), from need_windows
        self.device = device
        self.windows: dict = {}
        self.gather, self.mul_maps, self.fused = kernels
        self.products = {} if products is None else products  # mask * slope maps, shared between chunks

    def window(self, level: int, reach: int = 0):
        """(origin (B, 2), (h, w)): one window for the chunk's need at ``level`` grown by ``reach``."""
        if (level, reach) not in self.windows:
            lo, hi = _grow(*self.need[level], reach, self.ext[level])
            origin, size = fit(lo, hi, self.ext[level])
            self.windows[level, reach] = origin.to(self.device), size
        return self.windows[level, reach]

    def seed(self, queries: torch.Tensor, dtype, device) -> Window:
        return Window(torch.ones(len(queries), 3, 1, 1, dtype=dtype, device=device), queries.to(device))

    def _clip(self, g: Window, level: int) -> Window:
        """A decoder crop cut to its level: what lies beyond the map's edge does not exist."""
        h, w = self.ext[level]
        size = (min(g.t.shape[2], h), min(g.t.shape[3], w))
        ext = torch.tensor([w, h], device=g.o.device)
        origin = torch.minimum(g.o, ext - torch.tensor(size[::-1], device=g.o.device)).clamp(min=0)
        if size == tuple(g.t.shape[2:]) and torch.equal(origin, g.o):
            return g
        return Window(self.gather(g.t, origin - g.o, size), origin)

    def conv_t(self, g: Window, weight, level, reach):
        if reach is None:  # the whole support: the crop grows by the kernel's reach
            return self._clip(Window(F.conv_transpose2d(g.t, weight), g.o - 1), level)
        # only the need grown by ``reach``: computed from the input on that window grown by the
        # kernel's half-width (a valid convolution; zeros beyond the map, as the forward's padding)
        origin, size = self.window(level, reach)
        r = weight.shape[-1] // 2
        if size == self.ext[level] == tuple(g.t.shape[2:]):  # the whole map
            return Window(F.conv_transpose2d(g.t, weight, padding=r), origin)
        src = self.gather(g.t, origin - r - g.o, (size[0] + 2 * r, size[1] + 2 * r))
        return Window(F.conv_transpose2d(src, weight, padding=2 * r), origin)

    def down(self, g: Window, weight, level):
        """convtranspose k x k, stride 2, padding 1, backward: from level to level + 1. Coarse
        pixel i reads fine pixels 2i-1 .. 2i+k-2, so the crop is first aligned to an even
        origin, then every coarse pixel it reaches is computed (the crop grows)."""
        k = weight.shape[-1]
        odd = g.o % 2
        h, w = g.t.shape[2:]
        size = (h + int(odd[:, 1].max()), w + int(odd[:, 0].max()))
        size = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        t = g.t if size == (h, w) else self.gather(g.t, -odd, size)
        t = F.conv2d(t, weight, stride=2, padding=k - 1)
        return self._clip(Window(t, (g.o - odd - k + 2) // 2), level + 1)

    def mul(self, g: Window, maps, level):
        return Window(self.mul_maps(g.t, maps, g.o), g.o)

    def split(self, g: Window, c):
        return Window(g.t[:, :c], g.o), Window(g.t[:, c:], g.o)

    def to_encoder(self, g: Window, block: int) -> Window:
        origin, size = self.window(block + 1)
        if size == tuple(g.t.shape[2:]) and torch.equal(origin, g.o):
            return g
        return Window(self.gather(g.t, origin - g.o, size), origin)

    def add(self, a: Window, b: Window) -> Window:
        return Window(a.t + b.t, a.o)

    def unpool_mul(self, g: Window, mask, slope, level):
        """One pass over the fine crop: each coarse value copied to its 2 x 2 pixels, times the
        product of the argmax mask and the slope map (mask is 0 or 1: the same numbers as
        multiplying by each in turn)."""
        key = (id(mask), id(slope))
        product = self.products.get(key)
        if product is None:  # the maps are kept alive with their ids; threads sharing one tier
            # may both build it: the maps are equal, setdefault keeps the first
            product = self.products.setdefault(key, (mask * slope, mask, slope))
        B, C, h, w = g.t.shape
        up = g.t[:, :, :, None, :, None].expand(B, C, h, 2, w, 2).reshape(B, C, 2 * h, 2 * w)
        o = g.o * 2
        return Window(self.mul_maps(up, product[0], o), o)

    def input(self, g: Window, weight):
        return self.fused(g.t, weight, g.o)
