"""The matching reduction, dispatched over its implementations.

Every implementation computes ``_torch_impl.match_reduce`` (the definition; DESIGN.md section 3)
and tests pin them to it:

- ``torch``:  that plain-PyTorch reference itself.
- ``triton``: ``mind_engine.kernels.match_reduce`` (CUDA tensors; CPU ones under TRITON_INTERPRET=1).
- ``cpp``:    ``mind_engine._C``, its CUDA kernel for CUDA tensors and its C++ loop for CPU ones.
- ``auto``:   cpp on a GPU when built with CUDA, else triton on a GPU; cpp on the CPU; else torch.
"""
from __future__ import annotations

import functools
import os

import torch

from . import _torch_impl

IMPLS = ("auto", "torch", "triton", "cpp")
_CUDA_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


@functools.cache
def _ext():
    """The compiled module, or None when this install has none."""
    try:
        from . import _C
    except ImportError:
        return None
    return _C


@functools.cache
def _cpp_cuda() -> bool:
    C = _ext()
    return C is not None and C.cuda_available()


@functools.cache
def _triton() -> bool:
    from .kernels import triton_installed

    return triton_installed()


def available(impl: str, device: torch.device | str = "cpu") -> bool:
    """Whether ``impl`` can run on tensors of ``device``."""
    device = torch.device(device)
    if impl in ("auto", "torch"):
        return True
    if impl == "cpp":
        return _cpp_cuda() if device.type == "cuda" else device.type == "cpu" and _ext() is not None
    if impl == "triton":
        interpreted = device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
        return (device.type == "cuda" or interpreted) and _triton()
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


def _resolve(impl: str, device: torch.device) -> str:
    if impl == "auto":
        if device.type == "cuda":
            return "cpp" if _cpp_cuda() else "triton" if _triton() else "torch"
        return "cpp" if device.type == "cpu" and _ext() is not None else "torch"
    if available(impl, device):
        return impl
    if impl == "cpp":
        if _ext() is None:
            raise RuntimeError("impl='cpp': mind_engine._C is not built (reinstall with `pip install -e .`)")
        if device.type == "cuda" and not _ext().cuda_compiled():
            raise RuntimeError("impl='cpp' on a CUDA tensor: mind_engine._C was built without CUDA (no nvcc)")
        raise RuntimeError(f"impl='cpp' cannot run on {device}: no usable CUDA device for mind_engine._C")
    if not _triton():
        raise RuntimeError("impl='triton': Triton is not installed (pip install 'mind-engine[triton]')")
    raise RuntimeError(f"impl='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 for CPU ones), got {device}")


def _cpp(rows: torch.Tensor, box: torch.Tensor, out: tuple[torch.Tensor, ...]) -> None:
    C = _ext()
    ptrs = [t.data_ptr() for t in out]
    if rows.is_cuda:
        if rows.dtype not in _CUDA_DTYPES:
            rows = rows.float()  # exact: the reference takes max |.| before its cast to fp32
        stream = torch.cuda.current_stream(rows.device).cuda_stream
        C.match_reduce_cuda(rows.data_ptr(), _CUDA_DTYPES[rows.dtype], rows.shape, rows.stride(),
                            box.data_ptr(), *ptrs, rows.device.index, stream)
    else:
        rows = rows.float()
        C.match_reduce_cpu(rows.data_ptr(), rows.shape, rows.stride(), box.data_ptr(), *ptrs)


def match_reduce(rows: torch.Tensor, box: torch.Tensor | None = None, impl: str = "auto"):
    """Reduce (B, C, H, W) row maps to (idx, peak, score), as ``_torch_impl.match_reduce``.

    box: optional (B, 4) [x0, y0, x1, y1) half-open search boxes (any int or float dtype, any
    device); None searches the whole map. Returns idx (B,) int64, peak and score (B,) float32,
    on ``rows``' device.
    """
    if rows.dim() != 4 or not rows.is_floating_point():
        raise ValueError(f"rows must be a (B, C, H, W) float tensor, got {tuple(rows.shape)} {rows.dtype}")
    B, C, H, W = rows.shape
    if C * H * W == 0:
        raise ValueError(f"rows must have non-empty maps, got shape {tuple(rows.shape)}")
    impl = _resolve(impl, rows.device)
    if box is None:
        box = torch.tensor([0, 0, W, H], device=rows.device).repeat(B, 1)
    elif tuple(box.shape) != (B, 4):
        raise ValueError(f"box must be (B, 4) = ({B}, 4), got {tuple(box.shape)}")
    box = box.to(rows.device).long().contiguous()
    out = (torch.empty(B, dtype=torch.int64, device=rows.device),
           torch.empty(B, dtype=torch.float32, device=rows.device),
           torch.empty(B, dtype=torch.float32, device=rows.device))
    if B == 0:
        return out
    if impl == "torch":
        return _torch_impl.match_reduce(rows, box)
    if impl == "triton":
        from .kernels.match_reduce import match_reduce as triton_match_reduce

        return triton_match_reduce(rows, box)
    _cpp(rows, box, out)
    return out
