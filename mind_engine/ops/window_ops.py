"""Window crops, dispatched over their implementations (``dispatch``): ``window_gather`` and
``window_mul`` compute ``_torch_impl.window_gather`` and ``_torch_impl.window_mul`` exactly.

The kernels take float32, and float16/bfloat16 too in Triton and on CUDA (the C++ CPU loop is
fp32 only); ``auto`` falls back to torch for any other dtype, an explicit impl raises.
"""
from __future__ import annotations

import torch

from . import _torch_impl
from .dispatch import CUDA_DTYPES, ext, resolve, stream


def _impl(impl: str, t: torch.Tensor) -> str:
    resolved = resolve(impl, t.device)
    if resolved == "torch" or t.dtype in (CUDA_DTYPES if t.is_cuda or resolved == "triton" else (torch.float32,)):
        return resolved
    if impl == "auto":
        return "torch"
    raise ValueError(f"impl={impl!r} takes float32 (and float16/bfloat16 in Triton or on CUDA), got {t.dtype} "
                     f"on {t.device}")


def _crop(impl: str, src: torch.Tensor, origin: torch.Tensor, size: tuple[int, int], g: torch.Tensor | None):
    if src.dim() not in (3, 4) or not src.is_floating_point():
        raise ValueError(f"src must be a (B, C, Hs, Ws) or (C, Hs, Ws) float tensor, got {tuple(src.shape)} {src.dtype}")
    if origin.dim() != 2 or origin.shape[1] != 2:
        raise ValueError(f"origin must be (B, 2), got {tuple(origin.shape)}")
    B, h, w = origin.shape[0], *size
    if src.dim() == 4 and src.shape[0] != B:
        raise ValueError(f"src has {src.shape[0]} windows' sources but origin has {B} windows")
    impl = _impl(impl, src)
    if impl == "torch":
        return _torch_impl.window_gather(src, origin, size) if g is None else _torch_impl.window_mul(g, src, origin)
    src, origin = src.contiguous(), origin.to(src.device).long().contiguous()
    g = None if g is None else g.contiguous()
    if impl == "triton":
        from .triton.window_ops import window_crop

        return window_crop(src, origin, size, g)
    C, Hs, Ws = src.shape[-3:]
    out = torch.empty(B, C, h, w, dtype=src.dtype, device=src.device)
    geometry = (B, C, h, w, Hs, Ws, C * Hs * Ws if src.dim() == 4 else 0)
    g_ptr = 0 if g is None else g.data_ptr()
    if src.is_cuda:
        ext().window_crop_cuda(geometry, origin.data_ptr(), CUDA_DTYPES[src.dtype], src.data_ptr(), g_ptr,
                               out.data_ptr(), src.device.index, stream(src.device))
    else:
        ext().window_crop_cpu(geometry, origin.data_ptr(), src.data_ptr(), g_ptr, out.data_ptr(),
                              torch.get_num_threads())
    return out


def window_gather(src: torch.Tensor, origin: torch.Tensor, size: tuple[int, int], impl: str = "auto") -> torch.Tensor:
    """(B, C, h, w) crops of ``src`` ((B, C, Hs, Ws) per window or (C, Hs, Ws) shared) at ``origin``
    ((B, 2) ints (x, y), any device), zero outside ``src``; as ``_torch_impl.window_gather``."""
    return _crop(impl, src, origin, tuple(size), None)


def window_mul(g: torch.Tensor, maps: torch.Tensor, origin: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """``g * window_gather(maps, origin, g's size)`` for g (B, C, h, w) and maps of g's dtype with
    C channels; as ``_torch_impl.window_mul``."""
    if g.dim() != 4 or maps.dim() not in (3, 4) or maps.shape[-3] != g.shape[1] or maps.dtype != g.dtype:
        raise ValueError(f"g must be (B, C, h, w) and maps (B, C, Hs, Ws) or (C, Hs, Ws) of g's dtype, got "
                         f"{tuple(g.shape)} {g.dtype} and {tuple(maps.shape)} {maps.dtype}")
    if origin.shape[0] != g.shape[0]:
        raise ValueError(f"origin must be (B, 2) with B = {g.shape[0]}, got {tuple(origin.shape)}")
    return _crop(impl, maps, origin, tuple(g.shape[-2:]), g)
