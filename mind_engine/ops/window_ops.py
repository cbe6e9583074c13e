"""Window crops, dispatched over their implementations (``dispatch``): ``window_gather`` and
``window_mul`` compute ``_torch_impl.window_gather`` and ``_torch_impl.window_mul`` exactly
(bfloat16 natively in the C++ CPU loops too: a product is rounded once, as torch rounds it).

Both are torch operators (``torch.ops.mind_engine.window_gather`` and ``.window_mul``, with fake
implementations, so ``torch.compile`` traces through them; eager calls run the bodies directly,
``dispatch.call``). The kernels take float32, float16
and bfloat16 (``dispatch.choose``); ``auto`` falls back to torch for any other dtype, an
explicit impl raises.
"""
from __future__ import annotations

import torch

from . import _torch_impl
from .dispatch import CUDA_DTYPES, call, choose, device_guard, ext, kernel_input, stream


# The C++ CPU crops run on the calling thread alone: they are memory-bound copies, and a second
# thread of their own competed with torch's OpenMP workers, which keep spinning for a while after
# each convolution. Coarse to fine at 384x128 (bench/c2f_profile.py --threads 2, this 2-core EPYC,
# two runs each): bf16 4.28 / 4.35 s with one crop thread against 5.24 / 4.87 s with two (their
# share at the finest level 0.41 s against 0.73-0.93 s); fp32 8.25 against 9.07 s.
CPU_CROP_THREADS = 1


def _cpp_crop(src: torch.Tensor, origin: torch.Tensor, size: tuple[int, int], g: torch.Tensor | None):
    """The ``_C`` kernels on contiguous tensors (fp32 or bf16 on the CPU)."""
    B, (C, Hs, Ws), (h, w) = origin.shape[0], src.shape[-3:], size
    out = torch.empty(B, C, h, w, dtype=src.dtype, device=src.device)
    geometry = (B, C, h, w, Hs, Ws, C * Hs * Ws if src.dim() == 4 else 0)
    g_ptr = 0 if g is None else g.data_ptr()
    if src.is_cuda:
        ext().window_crop_cuda(geometry, origin.data_ptr(), CUDA_DTYPES[src.dtype], src.data_ptr(), g_ptr,
                               out.data_ptr(), src.device.index, stream(src.device))
    else:
        ext().window_crop_cpu(geometry, origin.data_ptr(), CUDA_DTYPES[src.dtype], src.data_ptr(), g_ptr,
                              out.data_ptr(), CPU_CROP_THREADS)
    return out


def _triton_crop(src, origin, size, g):
    from ..kernels.window_ops import window_crop

    return window_crop(src, origin, size, g)


def _crop(src: torch.Tensor, origin: torch.Tensor, size: tuple[int, int], g: torch.Tensor | None, impl: str):
    """One body for both ops: ``impl`` resolved by the dtype rule, inputs as the kernel reads them."""
    impl = choose(impl, src)
    if impl == "torch":
        out = _torch_impl.window_gather(src, origin, size) if g is None else _torch_impl.window_mul(g, src, origin)
        return out.contiguous()  # the fake implementation promises contiguous crops
    dtype = src.dtype
    src, origin = kernel_input(impl, src, cpu_bf16=True), origin.long().contiguous()
    g = None if g is None else kernel_input(impl, g, cpu_bf16=True)
    if origin.shape[0] * src.shape[-3] * size[0] * size[1] == 0:
        return torch.empty(origin.shape[0], src.shape[-3], *size, dtype=dtype, device=src.device)
    with device_guard(src.device):
        out = (_triton_crop if impl == "triton" else _cpp_crop)(src, origin, size, g)
    return out.to(dtype)


def _gather_body(src: torch.Tensor, origin: torch.Tensor, h: int, w: int, impl: str) -> torch.Tensor:
    return _crop(src, origin, (h, w), None, impl)


def _mul_body(g: torch.Tensor, maps: torch.Tensor, origin: torch.Tensor, impl: str) -> torch.Tensor:
    return _crop(maps, origin, tuple(g.shape[-2:]), g, impl)


@torch.library.custom_op("mind_engine::window_gather", mutates_args=())
def _window_gather_op(src: torch.Tensor, origin: torch.Tensor, h: int, w: int, impl: str) -> torch.Tensor:
    return _gather_body(src, origin, h, w, impl)


@_window_gather_op.register_fake
def _(src, origin, h, w, impl):
    return src.new_empty(origin.shape[0], src.shape[-3], h, w)


@torch.library.custom_op("mind_engine::window_mul", mutates_args=())
def _window_mul_op(g: torch.Tensor, maps: torch.Tensor, origin: torch.Tensor, impl: str) -> torch.Tensor:
    return _mul_body(g, maps, origin, impl)


@_window_mul_op.register_fake
def _(g, maps, origin, impl):
    return torch.empty_like(g)


def _check(src: torch.Tensor, origin: torch.Tensor) -> None:
    if src.dim() not in (3, 4) or not src.is_floating_point():
        raise ValueError(f"src must be a (B, C, Hs, Ws) or (C, Hs, Ws) float tensor, got {tuple(src.shape)} {src.dtype}")
    if origin.dim() != 2 or origin.shape[1] != 2:
        raise ValueError(f"origin must be (B, 2), got {tuple(origin.shape)}")
    if src.dim() == 4 and src.shape[0] != origin.shape[0]:
        raise ValueError(f"src has {src.shape[0]} windows' sources but origin has {origin.shape[0]} windows")


def window_gather(src: torch.Tensor, origin: torch.Tensor, size: tuple[int, int], impl: str = "auto") -> torch.Tensor:
    """(B, C, h, w) crops of ``src`` ((B, C, Hs, Ws) per window or (C, Hs, Ws) shared) at ``origin``
    ((B, 2) ints (x, y), any device), zero outside ``src``; as ``_torch_impl.window_gather``."""
    _check(src, origin)
    h, w = size
    return call(torch.ops.mind_engine.window_gather, _gather_body, src, origin.to(src.device).long(), int(h), int(w),
                impl)


def window_mul(g: torch.Tensor, maps: torch.Tensor, origin: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """``g * window_gather(maps, origin, g's size)`` for g (B, C, h, w) and maps of g's dtype with
    C channels; as ``_torch_impl.window_mul``."""
    if g.dim() != 4 or maps.dim() not in (3, 4) or maps.shape[-3] != g.shape[1] or maps.dtype != g.dtype:
        raise ValueError(f"g must be (B, C, h, w) and maps (B, C, Hs, Ws) or (C, Hs, Ws) of g's dtype, got "
                         f"{tuple(g.shape)} {g.dtype} and {tuple(maps.shape)} {maps.dtype}")
    if origin.shape[0] != g.shape[0]:
        raise ValueError(f"origin must be (B, 2) with B = {g.shape[0]}, got {tuple(origin.shape)}")
    _check(maps, origin)
    return call(torch.ops.mind_engine.window_mul, _mul_body, g, maps, origin.to(g.device).long(), impl)
