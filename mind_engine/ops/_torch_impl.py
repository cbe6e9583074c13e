"""Plain-PyTorch reference of every fused op (the definitions the kernels are pinned to).

Each function here is the specification: the Triton kernels in the top-level ``kernels/``
(``mind_engine.kernels``) and the C++/CUDA ops in ``csrc/`` compute the same thing and the tests
hold them to it.
"""
from __future__ import annotations

import torch

SCORE_HALF = 10  # the score window is [x-10, x+10) x [y-10, y+10) around the peak (paper, Fig. 4)


def match_reduce(rows: torch.Tensor, box: torch.Tensor | None = None):
    """Reduce a batch of Jacobian row maps to match points and scores (docs/architecture.md section 2).

    rows: (B, C, H, W) float, one row map per batch entry.
    box:  optional (B, 4) int [x0, y0, x1, y1): the half-open region the peak is searched in
          (default: the whole map). The score window still sees the whole map.

    Returns (idx, peak, score): idx (B,) int64 flat index y * W + x of the peak of
    S = max_c |rows| (lowest index on ties; NaN entries count as 0, as in the C++ and CUDA
    kernels), peak (B,) = S at idx, and score (B,) = peak / mean
    of S over the 20 x 20 window [x-10, x+10) x [y-10, y+10) clipped to the map (0 where peak is 0).
    """
    B, _, H, W = rows.shape
    s = rows.abs().nan_to_num(nan=0.0, posinf=float("inf")).amax(1).float()  # (B, H, W); NaN counts as 0
    flat = s.flatten(1)
    if box is not None:
        ys = torch.arange(H, device=s.device).view(1, H, 1)
        xs = torch.arange(W, device=s.device).view(1, 1, W)
        b = box.to(s.device).long().view(B, 4, 1, 1)
        inside = (xs >= b[:, 0]) & (ys >= b[:, 1]) & (xs < b[:, 2]) & (ys < b[:, 3])
        flat = torch.where(inside, s, -1.0).flatten(1)  # S >= 0, so -1 never wins inside a box
    idx = flat.argmax(1)
    peak = s.flatten(1).gather(1, idx[:, None])[:, 0]
    py, px = idx // W, idx % W
    offs = torch.arange(-SCORE_HALF, SCORE_HALF, device=s.device)
    wy = (py[:, None] + offs).view(B, -1, 1)
    wx = (px[:, None] + offs).view(B, 1, -1)
    valid = (wy >= 0) & (wy < H) & (wx >= 0) & (wx < W)
    window = s.flatten(1).gather(1, (wy.clamp(0, H - 1) * W + wx.clamp(0, W - 1)).flatten(1))
    window = torch.where(valid.flatten(1), window, 0.0)
    mean = window.sum(1) / valid.flatten(1).sum(1)
    score = torch.where(peak > 0, peak / torch.where(mean > 0, mean, 1.0), 0.0)
    return idx, peak, score


def window_gather(src: torch.Tensor, origin: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Cut one window per batch entry out of ``src``, zero where the window leaves ``src``.

    src:    (B, C, Hs, Ws), one source per window, or (C, Hs, Ws), one source shared by all.
    origin: (B, 2) int (x, y) of each window's top-left corner in ``src``'s coordinates (any
            integers: windows may reach past every border).
    size:   (h, w) of the windows.

    Returns (B, C, h, w): out[b, c, i, j] = src[b, c, y + i, x + j] where that lies inside
    ``src`` and 0 elsewhere, with (x, y) = origin[b]. The engine's windowed tier moves every
    gradient between its per-query crops with this, and pastes crops into whole maps with a
    negative origin.
    """
    h, w = size
    origin = origin.to(src.device).long()
    B = origin.shape[0]
    Hs, Ws = src.shape[-2:]
    ys = origin[:, 1, None] + torch.arange(h, device=src.device)  # (B, h)
    xs = origin[:, 0, None] + torch.arange(w, device=src.device)  # (B, w)
    valid = ((ys >= 0) & (ys < Hs))[:, :, None] & ((xs >= 0) & (xs < Ws))[:, None, :]  # (B, h, w)
    yi = ys.clamp(0, Hs - 1)[:, :, None]
    xi = xs.clamp(0, Ws - 1)[:, None, :]
    if src.dim() == 3:
        out = src[:, yi, xi].permute(1, 0, 2, 3)  # (C, B, h, w) -> (B, C, h, w)
    else:
        out = src[torch.arange(B, device=src.device)[:, None, None], :, yi, xi].permute(0, 3, 1, 2)
    return torch.where(valid[:, None], out, out.new_zeros(()))


def window_mul(g: torch.Tensor, maps: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """``g * window_gather(maps, origin, g's size)``: a batch of gradient crops times the crops
    of one cached map (PReLU slope map or maxpool argmax mask) at the same places (0 outside)."""
    return g * window_gather(maps, origin, tuple(g.shape[-2:]))


def input_backward_match(g: torch.Tensor, weight: torch.Tensor, origin: torch.Tensor, box: torch.Tensor,
                         hw: tuple[int, int]):
    """The network's first layer backward, fused with the matching reduction of both images.

    g:      (B, C, h, w) gradient with respect to the first conv's output (slopes applied),
            each on a window whose top-left corner in the padded input is origin[b] = (x, y).
    weight: (C, 6, 3, 3) the first conv's weight (padding 1).
    box:    (B, 4) int [x0, y0, x1, y1) search boxes in the caller's image coordinates.
    hw:     (H, W) of the caller's image (the padded input's top-left part).

    The rows on each window are conv_transpose2d(g, weight, padding=1), shape (B, 6, h, w):
    channels 0-2 are d/dI1, 3-5 d/dI3 (contributions from outside the window are absent, and
    rows outside the window count as 0: the caller makes the window cover the box grown by the
    score window). Returns (idx, peak, score), each (2, B) (image 1, image 3), exactly
    ``match_reduce`` of those rows pasted into (H, W) maps: idx is y * W + x in the caller's image.
    """
    H, W = hw
    rows = torch.nn.functional.conv_transpose2d(g, weight, padding=1)
    canvas = window_gather(rows, -origin.to(rows.device).long(), (H, W))
    r1, r3 = match_reduce(canvas[:, :3], box), match_reduce(canvas[:, 3:], box)
    return tuple(torch.stack([a, b]) for a, b in zip(r1, r3))
