"""Triton fused first-layer backward + matching reduction (definition:
mind_engine/ops/_torch_impl.py input_backward_match); the (B, 6, h, w) rows are never stored.

Pass A, one program per (tile of the window, seed): the 6 row channels of the tile's pixels
(3 x 3 transposed conv over the C channels of g, in fp32), each image's S = max |row| over the
searched pixels (box ∩ image ∩ window) packed into an int64 key (S's bits above, ~flat index
below: the larger key is the larger S, then the lower index) and atomically maxed into idx.
Pass B, one program per (seed, image): decode the key, sum S over the 20 x 20 score window
(both images' S are formed there: one code path for the rows, a small window).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

TILE_H, TILE_W = 16, 32
LOW = 0xFFFFFFFF


@triton.jit
def _sensitivities(gb, weight, i, j, mask, C, h, w):
    """(S of image 1, S of image 3) at window pixels (i, j): the rows are
    rows[o, i, j] = sum g[c, i + 1 - ky, j + 1 - kx] * weight[c, o, ky, kx]."""
    a0 = tl.zeros(i.shape, tl.float32)
    a1 = tl.zeros(i.shape, tl.float32)
    a2 = tl.zeros(i.shape, tl.float32)
    a3 = tl.zeros(i.shape, tl.float32)
    a4 = tl.zeros(i.shape, tl.float32)
    a5 = tl.zeros(i.shape, tl.float32)
    for c in range(C):
        for ky in tl.static_range(3):
            for kx in tl.static_range(3):
                gi = i + 1 - ky
                gj = j + 1 - kx
                ok = mask & (gi >= 0) & (gi < h) & (gj >= 0) & (gj < w)
                v = tl.load(gb + (c * h + gi) * w + gj, mask=ok, other=0.0).to(tl.float32)
                wk = weight + c * 54 + ky * 3 + kx  # weight[c, o, ky, kx] at wk + 9 * o
                a0 += v * tl.load(wk)
                a1 += v * tl.load(wk + 9)
                a2 += v * tl.load(wk + 18)
                a3 += v * tl.load(wk + 27)
                a4 += v * tl.load(wk + 36)
                a5 += v * tl.load(wk + 45)
    s1 = tl.maximum(tl.abs(a0), tl.maximum(tl.abs(a1), tl.abs(a2)))
    s3 = tl.maximum(tl.abs(a3), tl.maximum(tl.abs(a4), tl.abs(a5)))
    return s1, s3


@triton.jit
def _search_kernel(g, weight, origin, box, keys, B, C, h, w, H, W, tiles_w,
                   TILE_H: tl.constexpr, TILE_W: tl.constexpr, LOW: tl.constexpr):
    t = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    ox = tl.load(origin + 2 * b)
    oy = tl.load(origin + 2 * b + 1)
    xa = tl.maximum(tl.maximum(tl.load(box + 4 * b), 0), ox) - ox
    ya = tl.maximum(tl.maximum(tl.load(box + 4 * b + 1), 0), oy) - oy
    xb = tl.minimum(tl.minimum(tl.load(box + 4 * b + 2), W), ox + w) - ox
    yb = tl.minimum(tl.minimum(tl.load(box + 4 * b + 3), H), oy + h) - oy
    i = (t // tiles_w) * TILE_H + tl.arange(0, TILE_H)[:, None]
    j = (t % tiles_w) * TILE_W + tl.arange(0, TILE_W)[None, :]
    searched = (i >= ya) & (i < yb) & (j >= xa) & (j < xb)
    # A tile with nothing to search runs no channel.
    C_here = tl.where(tl.max(tl.max(searched.to(tl.int32), 1), 0) > 0, C, 0)
    flat = (i + oy) * W + j + ox
    s1, s3 = _sensitivities(g + b * C * h * w, weight, i, j, searched, C_here, h, w)
    for k in tl.static_range(2):
        s = s1 if k == 0 else s3
        key = (s.to(tl.int32, bitcast=True).to(tl.int64) << 32) | (LOW - flat)
        key = tl.max(tl.max(tl.where(searched, key, 0), 1), 0)
        if C_here > 0:
            tl.atomic_max(keys + k * B + b, key)


@triton.jit
def _score_kernel(g, weight, origin, out_idx, out_peak, out_score, B, C, h, w, H, W,
                  HALF: tl.constexpr, WINDOW: tl.constexpr, LOW: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    k = tl.program_id(1)
    slot = k * B + b
    ox = tl.load(origin + 2 * b)
    oy = tl.load(origin + 2 * b + 1)
    key = tl.load(out_idx + slot)
    idx = tl.where(key != 0, LOW - (key & LOW), 0)
    peak = (key >> 32).to(tl.int32).to(tl.float32, bitcast=True)
    py = idx // W
    px = idx % W
    e = tl.arange(0, WINDOW)  # the 2*HALF x 2*HALF window, flattened and padded to a power of 2
    y = py - HALF + e // (2 * HALF)
    x = px - HALF + e % (2 * HALF)
    i = y - oy
    j = x - ox
    valid = (e < 4 * HALF * HALF) & (y >= 0) & (y < H) & (x >= 0) & (x < W) & (i >= 0) & (i < h) & (j >= 0) & (j < w)
    s1, s3 = _sensitivities(g + b * C * h * w, weight, i, j, valid, C, h, w)
    total = tl.sum(tl.where(k == 0, s1, s3), 0)
    count = (tl.minimum(py + HALF, H) - tl.maximum(py - HALF, 0)) * (tl.minimum(px + HALF, W) - tl.maximum(px - HALF, 0))
    mean = total / count.to(tl.float32)
    tl.store(out_idx + slot, idx)
    tl.store(out_peak + slot, peak)
    tl.store(out_score + slot, tl.where(peak > 0, peak / tl.where(mean > 0, mean, 1.0), 0.0))


def input_backward_match(g: torch.Tensor, weight: torch.Tensor, origin: torch.Tensor, box: torch.Tensor,
                         hw: tuple[int, int], half: int):
    """g (B, C, h, w) contiguous float, weight (C, 6, 3, 3) contiguous fp32, origin (B, 2) and box
    (B, 4) contiguous int64, all on a CUDA device (or the CPU under TRITON_INTERPRET=1); ``half``
    the score window's half size (the definition's ``SCORE_HALF``, passed by the op).
    Returns (idx int64, peak float32, score float32), each (2, B)."""
    B, C, h, w = g.shape
    H, W = hw
    idx = torch.zeros(2, B, dtype=torch.int64, device=g.device)  # the keys, until pass B decodes them
    peak = torch.empty(2, B, dtype=torch.float32, device=g.device)
    score = torch.empty(2, B, dtype=torch.float32, device=g.device)
    if B:
        tiles_w = triton.cdiv(w, TILE_W)
        _search_kernel[(tiles_w * triton.cdiv(h, TILE_H), B)](g, weight, origin, box, idx, B, C, h, w, H, W, tiles_w,
                                                              TILE_H=TILE_H, TILE_W=TILE_W, LOW=LOW)
        _score_kernel[(B, 2)](g, weight, origin, idx, peak, score, B, C, h, w, H, W, HALF=half,
                              WINDOW=triton.next_power_of_2(4 * half**2), LOW=LOW)
    return idx, peak, score
