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


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> contiguous (B, h, w, C) (no copy when t has channels-last strides)."""
    return t.permute(0, 2, 3, 1).contiguous()


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
    """The transposed network's operations on windows (see ``backward_walk``).

    ``channels_last``: the crops are (B, C, h, w) tensors with channels-last strides (on the CPU
    oneDNN's convolutions are faster so, and the crop copies move whole pixels); every crop of
    C channels is then moved by the window kernels as one plane of width w * C (``_gather``).
    """

    def __init__(self, padded_hw: tuple[int, int], need, kernels, device, products: dict | None = None,
                 channels_last: bool = False):
        self.ext = [(padded_hw[0] >> k, padded_hw[1] >> k) for k in range(len(need))]
        self.need = need  # per level: (lo, hi), from need_windows
        self.device = device
        self.windows: dict = {}
        self.gather, self.mul_maps, self.fused = kernels
        self.products = {} if products is None else products  # mask * slope maps, shared between chunks
        self.channels_last = channels_last

    def _gather(self, t: torch.Tensor, origin: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``window_gather`` in the crops' layout: channels last, C channels of a pixel are C
        neighbours on one plane, so a crop at x is the plane's crop at x * C, w * C wide."""
        if not self.channels_last:
            return self.gather(t, origin, size)
        B, C, H, W = t.shape
        scale = torch.tensor([C, 1], device=origin.device)
        flat = _nhwc(t).view(B, 1, H, W * C)
        out = self.gather(flat, origin * scale, (size[0], size[1] * C))
        return out.view(B, size[0], size[1], C).permute(0, 3, 1, 2)

    def _map(self, maps: torch.Tensor) -> torch.Tensor:
        """A cached (C, H, W) map as the window kernels read it in the crops' layout."""
        if not self.channels_last:
            return maps
        key = ("nhwc", id(maps))
        entry = self.products.get(key)
        if entry is None:  # as in unpool_mul: threads sharing one tier may both build it
            C, H, W = maps.shape
            entry = self.products.setdefault(key, (maps.permute(1, 2, 0).reshape(1, H, W * C), maps))
        return entry[0]

    def _mul(self, t: torch.Tensor, maps: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
        """``window_mul`` in the crops' layout."""
        if not self.channels_last:
            return self.mul_maps(t, maps, origin)
        B, C, h, w = t.shape
        scale = torch.tensor([C, 1], device=origin.device)
        out = self.mul_maps(_nhwc(t).view(B, 1, h, w * C), self._map(maps), origin * scale)
        return out.view(B, h, w, C).permute(0, 3, 1, 2)

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
        return Window(self._gather(g.t, origin - g.o, size), origin)

    def conv_t(self, g: Window, weight, level, reach):
        if reach is None:  # the whole support: the crop grows by the kernel's reach
            return self._clip(Window(F.conv_transpose2d(g.t, weight), g.o - 1), level)
        # only the need grown by ``reach``: computed from the input on that window grown by the
        # kernel's half-width (a valid convolution; zeros beyond the map, as the forward's padding)
        origin, size = self.window(level, reach)
        r = weight.shape[-1] // 2
        if size == self.ext[level] == tuple(g.t.shape[2:]):  # the whole map
            return Window(F.conv_transpose2d(g.t, weight, padding=r), origin)
        src = self._gather(g.t, origin - r - g.o, (size[0] + 2 * r, size[1] + 2 * r))
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
        t = g.t if size == (h, w) else self._gather(g.t, -odd, size)
        t = F.conv2d(t, weight, stride=2, padding=k - 1)
        return self._clip(Window(t, (g.o - odd - k + 2) // 2), level + 1)

    def mul(self, g: Window, maps, level):
        return Window(self._mul(g.t, maps, g.o), g.o)

    def split(self, g: Window, c):
        return Window(g.t[:, :c], g.o), Window(g.t[:, c:], g.o)

    def to_encoder(self, g: Window, block: int) -> Window:
        origin, size = self.window(block + 1)
        if size == tuple(g.t.shape[2:]) and torch.equal(origin, g.o):
            return g
        return Window(self._gather(g.t, origin - g.o, size), origin)

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
        o = g.o * 2
        if self.channels_last:  # the product's crop times g, each value over its 2 x 2 pixels, in place
            scale = torch.tensor([C, 1], device=o.device)
            prod = self.gather(self._map(product[0]), o * scale, (2 * h, 2 * w * C))
            prod.view(B, h, 2, w, 2, C).mul_(_nhwc(g.t)[:, :, None, :, None, :])
            return Window(prod.view(B, 2 * h, 2 * w, C).permute(0, 3, 1, 2), o)
        up = g.t[:, :, :, None, :, None].expand(B, C, h, 2, w, 2).reshape(B, C, 2 * h, 2 * w)
        return Window(self.mul_maps(up, product[0], o), o)

    def input(self, g: Window, weight):
        return self.fused(g.t, weight, g.o)
