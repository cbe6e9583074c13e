"""Triton matching reduction (definition: mind_engine/ops/_torch_impl.py match_reduce).

One program per batch row: it scans the search box in blocks for the argmax of
S = max_c |rows| (lowest flat index on ties), then sums S over the 20 x 20 score window.
Rows are read through their strides (sliced tensors need no copy) and in fp32 whatever their dtype.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _sensitivity(base, y, x, mask, C, sc, sh, sw):
    """S = max_c |rows[c, y, x]| at the masked positions (0 elsewhere)."""
    s = tl.zeros(y.shape, tl.float32)
    for c in range(C):
        v = tl.load(base + c * sc + y * sh + x * sw, mask=mask, other=0.0)
        s = tl.maximum(s, tl.abs(v.to(tl.float32)))
    return s


@triton.jit
def _match_reduce_kernel(rows, box, idx_out, peak_out, score_out, C, H, W, sb, sc, sh, sw,
                         BLOCK: tl.constexpr, HALF: tl.constexpr, WINDOW: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    base = rows + b * sb
    x0 = tl.maximum(tl.load(box + 4 * b), 0)
    y0 = tl.maximum(tl.load(box + 4 * b + 1), 0)
    x1 = tl.minimum(tl.load(box + 4 * b + 2), W)
    y1 = tl.minimum(tl.load(box + 4 * b + 3), H)
    bw = tl.maximum(x1 - x0, 0)
    n = bw * tl.maximum(y1 - y0, 0)

    # Each lane's indices rise from block to block, so a strict '>' keeps its lowest; -1 loses to
    # any S >= 0 and leaves index 0 for an empty box, as the reference does.
    best = tl.full([BLOCK], -1.0, tl.float32)
    best_idx = tl.zeros([BLOCK], tl.int64)
    for start in range(0, n, BLOCK):
        i = start + tl.arange(0, BLOCK).to(tl.int64)
        inside = i < n
        y = y0 + i // bw
        x = x0 + i % bw
        s = tl.where(inside, _sensitivity(base, y, x, inside, C, sc, sh, sw), -1.0)
        better = s > best
        best = tl.where(better, s, best)
        best_idx = tl.where(better, y * W + x, best_idx)
    top = tl.max(best, 0)
    idx = tl.min(tl.where(best == top, best_idx, H * W), 0)

    py = idx // W
    px = idx % W
    k = tl.arange(0, WINDOW)  # the 2*HALF x 2*HALF window, flattened and padded to a power of 2
    wy = py - HALF + k // (2 * HALF)
    wx = px - HALF + k % (2 * HALF)
    valid = (k < 4 * HALF * HALF) & (wy >= 0) & (wy < H) & (wx >= 0) & (wx < W)
    s = _sensitivity(base, wy, wx, valid, C, sc, sh, sw)
    total = tl.sum(s, 0)
    peak = tl.max(tl.where(k == 2 * HALF * HALF + HALF, s, 0.0), 0)  # the window's centre is the peak
    count = (tl.minimum(py + HALF, H) - tl.maximum(py - HALF, 0)) * (tl.minimum(px + HALF, W) - tl.maximum(px - HALF, 0))
    mean = total / count.to(tl.float32)
    tl.store(idx_out + b, idx)
    tl.store(peak_out + b, peak)
    tl.store(score_out + b, tl.where(peak > 0, peak / tl.where(mean > 0, mean, 1.0), 0.0))


def match_reduce(rows: torch.Tensor, box: torch.Tensor, half: int):
    """rows (B, C, H, W) float on a CUDA device (or the CPU under TRITON_INTERPRET=1), any strides;
    box (B, 4) int64 contiguous on the same device; ``half`` the score window's half size (the
    definition's ``SCORE_HALF``, passed by the op). Returns (idx int64, peak float32, score float32)."""
    B, C, H, W = rows.shape
    idx = torch.empty(B, dtype=torch.int64, device=rows.device)
    peak = torch.empty(B, dtype=torch.float32, device=rows.device)
    score = torch.empty(B, dtype=torch.float32, device=rows.device)
    if B:
        _match_reduce_kernel[(B,)](rows, box, idx, peak, score, C, H, W, *rows.stride(),
                                   BLOCK=BLOCK, HALF=half,
                                   WINDOW=triton.next_power_of_2(4 * half**2))
    return idx, peak, score
