"""The matching reduction, dispatched over its implementations.

Every implementation computes ``_torch_impl.match_reduce`` (the definition; docs/architecture.md section 2)
and tests pin them to it:

- ``torch``:  that plain-PyTorch reference itself.
- ``triton``: ``mind_engine.kernels.match_reduce`` (the top-level ``kernels/``; CUDA tensors, CPU ones
              under TRITON_INTERPRET=1).
- ``cpp``:    ``mind_engine._C``, its CUDA kernel for CUDA tensors and its C++ loop for CPU ones.
- ``auto``:   cpp on a GPU when built with CUDA, else triton on a GPU; cpp on the CPU; else torch
              (``dispatch.resolve``).
"""
from __future__ import annotations

import torch

from . import _torch_impl
from .dispatch import CUDA_DTYPES, IMPLS, available, call, choose, device_guard, stream
from .dispatch import ext as _ext

__all__ = ["IMPLS", "available", "match_reduce"]


def _cpp(rows: torch.Tensor, box: torch.Tensor, out: tuple[torch.Tensor, ...]) -> None:
    C = _ext()
    ptrs = [t.data_ptr() for t in out]
    if rows.is_cuda:
        if rows.dtype not in CUDA_DTYPES:
            rows = rows.float()  # exact: the reference takes max |.| before its cast to fp32
        C.match_reduce_cuda(rows.data_ptr(), CUDA_DTYPES[rows.dtype], rows.shape, rows.stride(),
                            box.data_ptr(), *ptrs, rows.device.index, stream(rows.device))
    else:
        rows = rows.float()
        C.match_reduce_cpu(rows.data_ptr(), rows.shape, rows.stride(), box.data_ptr(), *ptrs, torch.get_num_threads())


def _body(rows: torch.Tensor, box: torch.Tensor, impl: str):
    """The operator's body: ``impl`` resolved by the dtype rule (any float dtype), then one kernel."""
    impl = choose(impl, rows, any_float=True)
    B = rows.shape[0]
    out = (torch.empty(B, dtype=torch.int64, device=rows.device),
           torch.empty(B, dtype=torch.float32, device=rows.device),
           torch.empty(B, dtype=torch.float32, device=rows.device))
    if B == 0:
        return out
    if impl == "torch":
        return tuple(_torch_impl.match_reduce(rows, box))
    box = box.long().contiguous()
    with device_guard(rows.device):
        if impl == "triton":
            from ..kernels.match_reduce import match_reduce as triton_match_reduce

            return tuple(triton_match_reduce(rows, box, _torch_impl.SCORE_HALF))
        _cpp(rows, box, out)
    return out


@torch.library.custom_op("mind_engine::match_reduce", mutates_args=())
def _match_reduce_op(rows: torch.Tensor, box: torch.Tensor, impl: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _body(rows, box, impl)


@_match_reduce_op.register_fake
def _(rows, box, impl):
    B = rows.shape[0]
    return rows.new_empty(B, dtype=torch.int64), rows.new_empty(B, dtype=torch.float32), \
        rows.new_empty(B, dtype=torch.float32)


def match_reduce(rows: torch.Tensor, box: torch.Tensor | None = None, impl: str = "auto"):
    """Reduce (B, C, H, W) row maps to (idx, peak, score), as ``_torch_impl.match_reduce``.

    box: optional (B, 4) [x0, y0, x1, y1) half-open search boxes (any int or float dtype, any
    device); None searches the whole map. Returns idx (B,) int64, peak and score (B,) float32,
    on ``rows``' device. The torch operator ``torch.ops.mind_engine.match_reduce`` does the work (its body directly
    outside ``torch.compile``: ``dispatch.call``).
    """
    if rows.dim() != 4 or not rows.is_floating_point():
        raise ValueError(f"rows must be a (B, C, H, W) float tensor, got {tuple(rows.shape)} {rows.dtype}")
    B, C, H, W = rows.shape
    if C * H * W == 0:
        raise ValueError(f"rows must have non-empty maps, got shape {tuple(rows.shape)}")
    if box is None:
        box = torch.tensor([0, 0, W, H], device=rows.device).repeat(B, 1)
    elif tuple(box.shape) != (B, 4):
        raise ValueError(f"box must be (B, 4) = ({B}, 4), got {tuple(box.shape)}")
    return call(torch.ops.mind_engine.match_reduce, _body, rows, box.to(rows.device).long(), impl)
