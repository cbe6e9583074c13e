"""Tiers 2 and 3: the linearised backward on per-query windows (``windows``), exact where the
match needs it.

``match`` runs in two passes: the first computes the rows on the box alone, which gives the
exact peak, and the exact score wherever the peak's score window lies inside the box (nearly
always at R = 32: the peak sits near the query); only the other seeds are run again on the box
grown by the score window. Boxes narrower than the score window (R < 10) go straight to the
grown pass. At R = 32 the first pass computes about 0.6x the level-0 area of
one pass on the grown box.

Tier 2 runs the window operations as plain torch (``ops._torch_impl``), tier 3 through the
fused kernels (Triton on a GPU, C++ on the CPU): same result.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from ..ops import _torch_impl
from .linearisation import Linearisation
from .matching import DEFAULT_MEMORY, RowsTier, refuse_nonfinite
from .precision import PRECISIONS, stored_in
from .transpose import backward_walk
from .windows import SCORE_HALF, SCORE_REACH, WindowOps, encoder_reach, fit, need_windows, score_inside

# Working memory of a chunk of windows. On the CPU small chunks keep the windows in cache: at
# 384x128, R=32, paper widths, 2 threads (`bench/latency.py --only t3 --sample 32 --memory M`,
# two runs each), t3 took 25-27 ms/query with 128 MB against 29-32 ms with 1 GB; GPUs want
# large chunks.
CPU_MEMORY = 128 << 20
# Device types whose crops are laid out channels last (``WindowOps``): on the CPU oneDNN runs the
# transposed convolutions so about 1.2x faster in fp32 and 2x in bf16 (its AVX512-BF16 kernels;
# NCHW bf16 gained nothing); a GPU keeps NCHW, as it was measured.
CHANNELS_LAST_DEVICES = ("cpu",)


def _kernels(impl: str):
    if impl == "torch":
        return _torch_impl.window_gather, _torch_impl.window_mul, _torch_impl.input_backward_match
    from ..ops import input_backward_match, window_gather, window_mul

    return (partial(window_gather, impl=impl), partial(window_mul, impl=impl),
            partial(input_backward_match, impl=impl))


class Tier2(RowsTier):
    """Windowed linearised backward; ``match`` is exact against tier 0 for any search boxes.

    ``rows`` (whole-image boxes) gives whole exact rows, for inspection and tests.
    ``precision`` "bf16" or "fp16" stores the state and the windows in 16 bits (``precision``
    module; no longer exact).
    """

    name = "t2"
    speed = 2
    precisions = tuple(PRECISIONS)
    windowed = True
    impl = "torch"

    @classmethod
    def working_memory(cls, memory: int | None, device: torch.device) -> int:
        """Small chunks on the CPU (``CPU_MEMORY``: the windows stay in cache), large ones on a GPU."""
        return int(memory or (CPU_MEMORY if device.type == "cpu" else DEFAULT_MEMORY))

    def __init__(self, model, i1: torch.Tensor, i3: torch.Tensor, memory: int | None = None,
                 precision: str = "fp32"):
        self.lin = Linearisation(model, i1, i3)
        refuse_nonfinite(self.lin.out)  # not in Linearisation: the ONNX export traces that
        self.model = stored_in(model, self.lin, precision)
        self.memory = self.working_memory(memory, i1.device)
        self.reach = encoder_reach(model)
        self.kernels = _kernels(self.impl)
        self.products: dict = {}  # unpool's mask * slope maps, built once per image pair
        self.channels_last = i1.device.type in CHANNELS_LAST_DEVICES

    def _plan(self, boxes: torch.Tensor, hw: tuple[int, int], margin: tuple[int, int]):
        """The need regions for these boxes, and how many seeds fit the memory budget."""
        lin, enc = self.lin, self.model.config.encoder
        need = need_windows(boxes.cpu().long(), hw, lin.hw, self.reach, margin)
        pooled = [fit(lo, hi, (lin.hw[0] >> k, lin.hw[1] >> k))[1] for k, (lo, hi) in enumerate(need) if k]
        largest = max(4 * c * s[0] * s[1] for c, s in zip(enc, pooled))  # unpooled crops
        per_seed = 4 * largest * self.lin.out.element_size()
        chunks = -(-len(boxes) // max(1, self.memory // per_seed))
        return need, max(1, -(-len(boxes) // max(1, chunks)))  # chunks of equal size: no small last chunk

    def _run(self, queries, boxes, hw, fused, margin=SCORE_REACH):
        lin = self.lin
        dev = lin.out.device
        need, chunk = self._plan(boxes, hw, margin)
        results = []
        for s in range(0, len(queries), chunk):
            part = slice(s, s + chunk)
            q, b = queries[part].cpu(), boxes[part].cpu()
            ops = WindowOps(lin.hw, [(lo[part], hi[part]) for lo, hi in need],
                            self.kernels[:2] + (partial(fused, box=b.to(dev), hw=hw),), dev, self.products,
                            channels_last=self.channels_last)
            with torch.no_grad():
                results.append(backward_walk(self.model, lin, ops, ops.seed(q, lin.out.dtype, dev)))
        return results

    def match(self, queries: torch.Tensor, boxes: torch.Tensor, hw: tuple[int, int]):
        if len(queries) == 0:
            z = self.lin.out.new_zeros(0)
            return (z.long(), z, z), (z.long(), z, z)
        def run(q, b, margin):
            parts = self._run(q, b, hw, self.kernels[2], margin)
            return [torch.cat([p[i] for p in parts], 1) for i in range(3)]

        b = boxes.cpu()
        # boxes narrower than the score window (small radii, as coarse-to-fine runs): the first
        # pass could score none of them exactly, so the grown boxes run alone
        narrow = bool(((b[:, 2] - b[:, 0] < 2 * SCORE_HALF) | (b[:, 3] - b[:, 1] < 2 * SCORE_HALF)).all())
        idx, peak, score = run(queries, boxes, SCORE_REACH if narrow else (0, 0))
        redo = torch.zeros(0, dtype=torch.long) if narrow else (~score_inside(idx, boxes, hw)).nonzero()[:, 0].cpu()
        if len(redo):
            for t, exact in zip((idx, peak, score), run(queries[redo], boxes[redo], SCORE_REACH)):
                t[:, redo.to(t.device)] = exact
        return (idx[0], peak[0], score[0]), (idx[1], peak[1], score[1])

    def rows(self, queries: torch.Tensor):
        h, w = self.lin.hw
        return self.match_rows(queries, torch.tensor([0, 0, w, h]).repeat(len(queries), 1), (h, w))

    def match_rows(self, queries: torch.Tensor, boxes: torch.Tensor, hw: tuple[int, int]):
        """Rows (padded size), computed on the windows one pass of ``match`` needs: exact inside
        each box grown by the score window, not computed (inexact) elsewhere."""
        h, w = self.lin.hw
        if len(queries) == 0:
            empty = self.lin.out.new_zeros((0, 3, h, w))
            return empty, empty
        gather = self.kernels[0]

        def paste(g, weight, origin, box, hw):
            rows = F.conv_transpose2d(g, weight, padding=1)
            return gather(rows, -origin, (h, w))

        full = torch.cat(self._run(queries, boxes, hw, paste))
        return full[:, :3], full[:, 3:]


class Tier3(Tier2):
    """Tier 2 through the fused kernels (``impl='auto'``: C++ on the CPU, CUDA or Triton on a GPU)."""

    name = "t3"
    speed = 3
    impl = "auto"
