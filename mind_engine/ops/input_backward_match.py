"""The first layer's backward fused with the matching reduction, dispatched over its
implementations (``dispatch``); each computes ``_torch_impl.input_backward_match``: idx and peak
up to ties and float rounding of the rows (they are summed in another order), never storing the
(B, 6, h, w) rows.

``auto`` on the CPU takes whichever of cpp and torch was measured faster (CPU_AUTO): cpp, 7-9x.
Measured on the dev machine (2-core AMD EPYC VM with AVX-512, the other core busy), one thread,
g (64, 96, 100, 100), 80 x 80 boxes, 384 x 384 image, best of 3, two runs::

    OMP_NUM_THREADS=1 python bench/fused_ops_cpu.py
    conv_transpose2d alone            0.63 s / 0.77 s  (a lower bound for any torch path)
    input_backward_match impl=torch   1.67 s / 1.97 s
    input_backward_match impl=cpp     0.18 s / 0.25 s
"""
from __future__ import annotations

import torch

from . import _torch_impl
from .dispatch import CUDA_DTYPES, call, choose, device_guard, ext, kernel_input, stream

CPU_AUTO = "cpp"
CUDA_MAX_SEEDS = 65535  # the CUDA search kernel lays seeds on grid axis z, which holds at most this


def _cpp(g, weight, origin, box, hw):
    """The ``_C`` kernels on contiguous tensors (g fp32 or bf16 on the CPU, weight fp32)."""
    B, (H, W) = g.shape[0], hw
    if g.is_cuda and B > CUDA_MAX_SEEDS:  # launch in chunks the grid can hold
        parts = [_cpp(g[s:s + CUDA_MAX_SEEDS], weight, origin[s:s + CUDA_MAX_SEEDS], box[s:s + CUDA_MAX_SEEDS], hw)
                 for s in range(0, B, CUDA_MAX_SEEDS)]
        return tuple(torch.cat(p, 1) for p in zip(*parts))
    out = (torch.empty(2, B, dtype=torch.int64, device=g.device),
           torch.empty(2, B, dtype=torch.float32, device=g.device),
           torch.empty(2, B, dtype=torch.float32, device=g.device))
    if B == 0:
        return out
    args = (weight.data_ptr(), origin.data_ptr(), box.data_ptr(), H, W, *(t.data_ptr() for t in out))
    if g.is_cuda:
        ext().input_backward_match_cuda(g.data_ptr(), CUDA_DTYPES[g.dtype], g.shape, *args, g.device.index,
                                        stream(g.device))
    else:
        ext().input_backward_match_cpu(g.data_ptr(), CUDA_DTYPES[g.dtype], g.shape, *args, torch.get_num_threads())
    return out


def _triton(g, weight, origin, box, hw):
    from ..kernels.input_backward_match import input_backward_match as triton_input_backward_match

    return triton_input_backward_match(g, weight, origin, box, hw, _torch_impl.SCORE_HALF)


def _body(g: torch.Tensor, weight: torch.Tensor, origin: torch.Tensor, box: torch.Tensor, H: int, W: int,
          impl: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    impl = choose(impl, g, cpu=CPU_AUTO, any_float=True)
    if impl == "torch":
        return tuple(_torch_impl.input_backward_match(g, weight, origin, box, (H, W)))
    if H * W >= 2**32:
        raise ValueError(f"images of 2^32 pixels or more are not supported, got {H} x {W}")
    g, weight = kernel_input(impl, g, cpu_bf16=True), weight.float().contiguous()
    origin, box = origin.long().contiguous(), box.long().contiguous()
    with device_guard(g.device):
        return tuple((_triton if impl == "triton" else _cpp)(g, weight, origin, box, (H, W)))


@torch.library.custom_op("mind_engine::input_backward_match", mutates_args=())
def _input_backward_match_op(g: torch.Tensor, weight: torch.Tensor, origin: torch.Tensor, box: torch.Tensor,
                             H: int, W: int, impl: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _body(g, weight, origin, box, H, W, impl)


@_input_backward_match_op.register_fake
def _(g, weight, origin, box, H, W, impl):
    B = g.shape[0]
    return g.new_empty(2, B, dtype=torch.int64), g.new_empty(2, B, dtype=torch.float32), \
        g.new_empty(2, B, dtype=torch.float32)


def input_backward_match(g: torch.Tensor, weight: torch.Tensor, origin: torch.Tensor, box: torch.Tensor,
                         hw: tuple[int, int], impl: str = "auto"):
    """(idx, peak, score), each (2, B) (image 1, image 3; int64, float32, float32), of the rows
    conv_transpose2d(g, weight, padding=1) on windows at ``origin`` pasted into (H, W) = ``hw``
    maps and searched in ``box``, as ``_torch_impl.input_backward_match``; the work is done by
    the torch operator ``torch.ops.mind_engine.input_backward_match`` (its body outside ``torch.compile``).

    g (B, C, h, w) float; weight (C, 6, 3, 3); origin (B, 2) and box (B, 4) ints, any device;
    boxes must be non-empty and inside the image and the window.
    """
    if g.dim() != 4 or not g.is_floating_point() or tuple(weight.shape) != (g.shape[1], 6, 3, 3):
        raise ValueError(f"g must be a (B, C, h, w) float tensor and weight (C, 6, 3, 3), got {tuple(g.shape)} "
                         f"{g.dtype} and {tuple(weight.shape)}")
    B, H, W = g.shape[0], *hw
    if tuple(origin.shape) != (B, 2) or tuple(box.shape) != (B, 4):
        raise ValueError(f"origin must be (B, 2) and box (B, 4) with B = {B}, got {tuple(origin.shape)} "
                         f"and {tuple(box.shape)}")
    origin, box = (t.to(g.device).long() for t in (origin, box))
    return call(torch.ops.mind_engine.input_backward_match, _body, g, weight.to(g.device), origin, box, int(H), int(W),
                impl)
