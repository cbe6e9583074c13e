"""The matching reduction's implementations (C++ CPU, CUDA, Triton, dispatcher) against its
definition, mind_engine.ops._torch_impl.match_reduce: idx and peak exactly, score to rtol 1e-5."""

import re

import pytest
import torch

from mind_engine.ops import _torch_impl
from mind_engine.ops.match_reduce import _ext, match_reduce


def _random(b, c, h, w, seed=0):
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def _boxes(b, h, w, seed=0):
    """Random half-open boxes, some reaching past the map's borders."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, w + 3, (b, 2), generator=g).sort(1).values
    y = torch.randint(-3, h + 3, (b, 2), generator=g).sort(1).values
    return torch.stack([x[:, 0], y[:, 0], x[:, 1] + 1, y[:, 1] + 1], 1)


def _pixel_boxes(h, w):
    """1-pixel boxes at the four corners, the centre and the middle of each border."""
    pts = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, h // 2), (w // 2, 0), (0, h // 2),
           (w - 1, h // 2), (w // 2, h - 1)]
    return torch.tensor([[x, y, x + 1, y + 1] for x, y in pts])


def _border_boxes(h, w):
    """Boxes along the borders, one beyond the map, and an empty one (the reference gives idx 0)."""
    return torch.tensor([[0, 0, w, 1], [0, h - 1, w, h], [0, 0, 1, h], [w - 1, 0, w, h],
                         [-5, -5, 3, 3], [w - 2, h - 2, w + 9, h + 9], [3, 2, 3, 9], [w, h, w + 4, h + 4]])


CASES = {
    "1x1": lambda: (_random(3, 3, 1, 1), None),
    "5x7": lambda: (_random(3, 3, 5, 7), None),
    "19x23": lambda: (_random(2, 3, 19, 23, 1), None),
    "37x41-one-channel": lambda: (_random(2, 1, 37, 41, 2), None),
    "48x40-random-boxes": lambda: (_random(6, 3, 48, 40, 3), _boxes(6, 48, 40, 3)),
    "pixel-boxes": lambda: (_random(9, 3, 23, 29, 4), _pixel_boxes(23, 29)),
    "border-boxes": lambda: (_random(8, 3, 25, 31, 5), _border_boxes(25, 31)),
    "float-boxes": lambda: (_random(6, 3, 30, 26, 6), _boxes(6, 30, 26, 6).float() + 0.5),
    "all-zero": lambda: (torch.zeros(3, 3, 24, 21), torch.tensor([[0, 0, 21, 24], [4, 5, 9, 7], [0, 0, 0, 0]])),
    # Maps over 1024 pixels, so that ties also fall between the blocks of the Triton scan.
    "constant": lambda: (torch.full((2, 3, 40, 60), -0.5), torch.tensor([[0, 0, 60, 40], [6, 7, 20, 9]])),
    "integer-ties": lambda: (torch.randint(-2, 3, (6, 3, 33, 35), generator=torch.Generator().manual_seed(7))
                             .float(), _boxes(6, 33, 35, 7)),
    "integer-ties-whole-map": lambda: (torch.randint(0, 2, (2, 2, 41, 47), generator=torch.Generator()
                                                     .manual_seed(13)).float(), None),
    "sliced": lambda: (_random(3, 4, 40, 44, 8)[:, 1:, 3:35, 5:], None),
    "channels-last": lambda: (_random(3, 3, 21, 18, 9).to(memory_format=torch.channels_last), None),
    "float16": lambda: (_random(3, 3, 26, 30, 10).half(), _boxes(3, 26, 30, 10)),
    "bfloat16-ties": lambda: (_random(3, 3, 26, 30, 11).bfloat16(), None),
    "float64": lambda: (_random(3, 3, 20, 25, 12).double(), None),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, impl_device):
    impl, device = impl_device
    rows, box = CASES[case]()
    want_idx, want_peak, want_score = _torch_impl.match_reduce(rows, box)
    idx, peak, score = match_reduce(rows.to(device), None if box is None else box.to(device), impl=impl)
    assert (idx.dtype, peak.dtype, score.dtype) == (torch.int64, torch.float32, torch.float32)
    assert torch.equal(idx.cpu(), want_idx)
    assert torch.equal(peak.cpu(), want_peak)
    torch.testing.assert_close(score.cpu(), want_score, rtol=1e-5, atol=0)


def test_empty_batch(impl_device):
    impl, device = impl_device
    idx, peak, score = match_reduce(torch.zeros(0, 3, 8, 8, device=device), impl=impl)
    assert idx.shape == peak.shape == score.shape == (0,)


def test_extension_is_built():
    assert _ext() is not None, "mind_engine._C did not import: the CMake build did not run"
    assert isinstance(_ext().cuda_compiled(), bool)


def test_auto_takes_cpp_on_cpu():
    rows = _random(2, 3, 9, 9)
    assert all(torch.equal(a, b) for a, b in zip(match_reduce(rows), match_reduce(rows, impl="cpp")))


def test_clear_errors(monkeypatch):
    rows = _random(1, 3, 9, 9)
    with pytest.raises(ValueError, match="impl must be one of"):
        match_reduce(rows, impl="numba")
    with pytest.raises(ValueError, match="box must be"):
        match_reduce(rows, torch.zeros(2, 4), impl="torch")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="triton"):
        match_reduce(rows, impl="triton")


def test_the_cpp_score_window_is_the_torch_reference_s():
    """csrc/match_reduce.h keeps its own copy of the score half-width (the C++ never imports
    Python); this pins the two together. The Triton kernels import SCORE_HALF directly."""
    from pathlib import Path

    header = (Path(__file__).parents[1] / "csrc" / "match_reduce.h").read_text()
    found = re.findall(r"constexpr int64_t kScoreHalf = (\d+);", header)
    assert found == [str(_torch_impl.SCORE_HALF)]
