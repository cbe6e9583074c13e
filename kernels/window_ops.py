"""Triton window crops (definitions: mind_engine/ops/_torch_impl.py window_gather and window_mul).

One program per (window, channel) plane and block of crop pixels; a shared source is the
per-window case with a batch stride of 0. Products are taken in fp32 (exact for fp16 and bf16
operands) and stored in the crop's dtype.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _crop_kernel(src, origin, g, out, C, h, w, Hs, Ws, src_batch, MUL: tl.constexpr, BLOCK: tl.constexpr):
    p = tl.program_id(0).to(tl.int64)  # plane b * C + c
    b = p // C
    c = p % C
    e = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    in_crop = e < h * w
    x = tl.load(origin + 2 * b) + e % w
    y = tl.load(origin + 2 * b + 1) + e // w
    inside = in_crop & (x >= 0) & (x < Ws) & (y >= 0) & (y < Hs)
    v = tl.load(src + b * src_batch + (c * Hs + y) * Ws + x, mask=inside, other=0.0)
    if MUL:
        v = tl.load(g + p * h * w + e, mask=in_crop).to(tl.float32) * v.to(tl.float32)
    tl.store(out + p * h * w + e, v.to(out.dtype.element_ty), mask=in_crop)


def window_crop(src: torch.Tensor, origin: torch.Tensor, size: tuple[int, int], g: torch.Tensor | None = None):
    """src (B, C, Hs, Ws) or (C, Hs, Ws) contiguous, origin (B, 2) int64 contiguous, both on a CUDA
    device (or the CPU under TRITON_INTERPRET=1); g (B, C, h, w) contiguous of src's dtype or None.
    Returns the (B, C, h, w) crops (times g when given)."""
    h, w = size
    B, (C, Hs, Ws) = origin.shape[0], src.shape[-3:]
    out = torch.empty(B, C, h, w, dtype=src.dtype, device=src.device)
    if out.numel():
        src_batch = C * Hs * Ws if src.dim() == 4 else 0
        grid = (B * C, triton.cdiv(h * w, BLOCK))
        _crop_kernel[grid](src, origin, out if g is None else g, out, C, h, w, Hs, Ws, src_batch,
                           MUL=g is not None, BLOCK=BLOCK)
    return out
