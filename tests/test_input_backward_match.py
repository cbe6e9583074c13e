"""The fused first-layer backward + matching reduction's implementations (C++ CPU, CUDA, Triton,
dispatcher) against its definition, mind_engine.ops._torch_impl.input_backward_match.

The rows are summed in another order than conv_transpose2d's, so S may differ in its last bits:
idx must equal the reference's unless the reference's S at both indices agree to 1e-6 (relative),
peak and score are held to rtol 1e-5 against the reference's S at the returned idx. With integer
values every sum is exact and idx must be the reference's outright (ties included).
"""
import importlib.util
import itertools

import pytest
import torch

from mind_engine.ops import _torch_impl
from mind_engine.ops.dispatch import available
from mind_engine.ops import input_backward_match

TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # CPU: interpreted (conftest.py)
HALF = _torch_impl.SCORE_HALF


def _rand(gen, lo, hi):
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _geometry(seed, B, C, hw_max, HW_max, box="random", integer=False):
    """g, weight, origin, box, (H, W): windows anywhere from reaching past the image's top-left to
    past its bottom-right (overlapping it by at least one pixel), boxes inside image ∩ window."""
    gen = torch.Generator().manual_seed(seed)
    h, w = _rand(gen, 1, hw_max), _rand(gen, 1, hw_max)
    H, W = _rand(gen, 1, HW_max), _rand(gen, 1, HW_max)
    if integer:
        g = torch.randint(-2, 3, (B, C, h, w), generator=gen).float()
        weight = torch.randint(-1, 2, (C, 6, 3, 3), generator=gen).float()
    else:
        g, weight = torch.randn(B, C, h, w, generator=gen), torch.randn(C, 6, 3, 3, generator=gen)
    origin, boxes = [], []
    for _ in range(B):
        ox, oy = _rand(gen, 1 - w, W - 1), _rand(gen, 1 - h, H - 1)
        x0, x1, y0, y1 = max(0, ox), min(W, ox + w), max(0, oy), min(H, oy + h)
        if box == "pixel":
            xa, ya = _rand(gen, x0, x1 - 1), _rand(gen, y0, y1 - 1)
            xb, yb = xa + 1, ya + 1
        elif box == "whole":
            xa, ya, xb, yb = x0, y0, x1, y1
        else:
            xa, ya = _rand(gen, x0, x1 - 1), _rand(gen, y0, y1 - 1)
            xb, yb = _rand(gen, xa + 1, x1), _rand(gen, ya + 1, y1)
        origin.append([ox, oy])
        boxes.append([xa, ya, xb, yb])
    return g, weight, torch.tensor(origin), torch.tensor(boxes), (H, W)


def _borders(seed, C):
    """Windows hanging over each corner and border of a 13 x 17 image, searched whole."""
    gen = torch.Generator().manual_seed(seed)
    H, W, h, w = 13, 17, 8, 9
    origin = torch.tensor([[-4, -3], [W - 5, -3], [-4, H - 4], [W - 5, H - 4], [3, -6], [-7, 2], [W - 2, 4],
                           [5, H - 1], [-2, -2]])
    box = torch.stack([origin[:, 0].clamp(0, W), origin[:, 1].clamp(0, H), (origin[:, 0] + w).clamp(0, W),
                       (origin[:, 1] + h).clamp(0, H)], 1)
    return (torch.randn(len(origin), C, h, w, generator=gen), torch.randn(C, 6, 3, 3, generator=gen), origin, box,
            (H, W))


CASES = {  # name: (make, tiny enough for the Triton interpreter)
    "random-C1": (lambda: _geometry(0, 4, 1, 12, 20), True),
    "random-C3": (lambda: _geometry(1, 3, 3, 16, 24), True),
    "random-C8": (lambda: _geometry(2, 6, 8, 30, 45), False),
    "random-C40": (lambda: _geometry(3, 4, 40, 26, 40), False),
    "pixel-boxes": (lambda: _geometry(4, 8, 5, 20, 30, box="pixel"), False),
    "pixel-boxes-tiny": (lambda: _geometry(5, 3, 2, 10, 14, box="pixel"), True),
    "whole-windows": (lambda: _geometry(6, 5, 7, 24, 28, box="whole"), False),
    "image-borders": (lambda: _borders(7, 6), False),
    "image-borders-tiny": (lambda: _borders(8, 1), True),
    "wide-windows": (lambda: _geometry(9, 3, 4, 60, 70, box="whole"), False),  # many 16-column strips
    "integer-ties": (lambda: _geometry(10, 8, 6, 24, 30, integer=True), False),
    "integer-ties-whole": (lambda: _geometry(11, 6, 3, 20, 25, box="whole", integer=True), False),
    "integer-ties-tiny": (lambda: _geometry(12, 3, 2, 12, 16, box="whole", integer=True), True),
}
TINY = [name for name, (_, tiny) in CASES.items() if tiny]
RUNS = [
    *[pytest.param(case, "torch", "cpu", id=f"{case}-torch") for case in CASES],
    *[pytest.param(case, "cpp", "cpu", id=f"{case}-cpp-cpu") for case in CASES],
    *[pytest.param(case, "triton", TRITON_DEVICE, id=f"{case}-triton", marks=pytest.mark.skipif(
        importlib.util.find_spec("triton") is None, reason="Triton is not installed"))
      for case in (CASES if TRITON_DEVICE == "cuda" else TINY)],
    *[pytest.param(case, "cpp", "cuda", id=f"{case}-cpp-cuda", marks=pytest.mark.skipif(
        not available("cpp", "cuda"), reason="mind_engine._C.cuda_available() is False: built without CUDA, "
        "or no CUDA device here")) for case in CASES],
]


def _sensitivity(g, weight, origin, hw):
    """The reference's S maps, (2, B, H * W)."""
    rows = torch.nn.functional.conv_transpose2d(g, weight, padding=1)
    canvas = _torch_impl.window_gather(rows, -origin, hw)
    B, _, H, W = canvas.shape
    return canvas.view(B, 2, 3, H, W).abs().amax(2).transpose(0, 1).flatten(2)


def _score_at(s, idx, H, W):
    """peak / mean of S over the score window around each idx, as the reference forms it."""
    py, px = idx // W, idx % W
    out = torch.empty(idx.shape)
    for k, b in itertools.product(range(2), range(idx.shape[1])):
        y, x = py[k, b].item(), px[k, b].item()
        window = s[k, b].view(H, W)[max(y - HALF, 0):y + HALF, max(x - HALF, 0):x + HALF]
        peak, mean = s[k, b, idx[k, b]], window.mean()
        out[k, b] = peak / mean if peak > 0 else 0.0
    return out


@pytest.mark.parametrize("case, impl, device", RUNS)
def test_matches_reference(case, impl, device):
    g, weight, origin, box, hw = CASES[case][0]()
    want_idx, want_peak, want_score = _torch_impl.input_backward_match(g, weight, origin, box, hw)
    idx, peak, score = (t.cpu() for t in input_backward_match(g.to(device), weight.to(device), origin.to(device),
                                                              box.to(device), hw, impl=impl))
    assert (idx.dtype, peak.dtype, score.dtype) == (torch.int64, torch.float32, torch.float32)
    assert idx.shape == peak.shape == score.shape == (2, g.shape[0])
    s = _sensitivity(g, weight, origin, hw)
    s_want, s_got = s.gather(2, want_idx[..., None])[..., 0], s.gather(2, idx[..., None])[..., 0]
    if case.startswith("integer"):
        assert torch.equal(idx, want_idx)
    else:
        tied = (s_want - s_got).abs() <= 1e-6 * s_want.abs()
        assert torch.all((idx == want_idx) | tied), (idx, want_idx)
    W = hw[1]
    x, y = idx % W, idx // W
    assert torch.all((x >= box[:, 0]) & (x < box[:, 2]) & (y >= box[:, 1]) & (y < box[:, 3]))
    torch.testing.assert_close(peak, want_peak, rtol=1e-5, atol=0)
    torch.testing.assert_close(score, _score_at(s, idx, *hw), rtol=1e-5, atol=0)
    torch.testing.assert_close(score[idx == want_idx], want_score[idx == want_idx], rtol=1e-5, atol=0)


def test_auto_on_cpu_is_exactly_cpu_auto():
    from mind_engine.ops.input_backward_match import CPU_AUTO

    g, weight, origin, box, hw = _geometry(13, 3, 4, 12, 16)
    got = input_backward_match(g, weight, origin, box, hw)
    want = input_backward_match(g, weight, origin, box, hw, impl=CPU_AUTO)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_clear_errors():
    g, weight, origin, box, hw = _geometry(14, 2, 3, 8, 10)
    with pytest.raises(ValueError, match="impl must be one of"):
        input_backward_match(g, weight, origin, box, hw, impl="numba")
    with pytest.raises(ValueError, match="weight"):
        input_backward_match(g, weight[:, :3], origin, box, hw)
    with pytest.raises(ValueError, match="box"):
        input_backward_match(g, weight, origin, box[:1], hw)


@pytest.mark.skipif(not available("cpp", "cpu"), reason="mind_engine._C is not built")
def test_cpu_kernel_reads_bf16_as_its_fp32_value():
    """The C++ CPU loop widens each seed's bf16 g itself (no fp32 copy of the batch): the result is
    the one of the same values in fp32, bit for bit, on every border case."""
    for seed in range(4):
        g, weight, origin, box, hw = _geometry(seed, 6, 5, 14, 20)
        low = g.bfloat16()
        got = input_backward_match(low, weight, origin, box, hw, impl="cpp")
        want = input_backward_match(low.float(), weight, origin, box, hw, impl="cpp")
        for a, b in zip(got, want):
            assert torch.equal(a, b)
