"""The window crops' implementations (C++ CPU, CUDA, Triton, dispatcher) against their
definitions, mind_engine.ops._torch_impl.window_gather and window_mul: exactly (NaN where they give NaN)."""

import pytest
import torch

from mind_engine.ops import _torch_impl
from mind_engine.ops import window_gather, window_mul


def _origins(b, h, w, hs, ws, seed):
    """Origins from fully left/above the source to fully right/below it, so every border is crossed."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(-w - 2, ws + 3, (b,), generator=g), torch.randint(-h - 2, hs + 3, (b,), generator=g)], 1)


def _src(shape, seed, dtype=torch.float32):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


# name: (src shape, crop size (h, w), origins); a 3-d source is shared by all windows.
CASES = {
    "per-window": lambda: (_src((5, 3, 9, 11), 0), (4, 6), _origins(5, 4, 6, 9, 11, 0)),
    "shared": lambda: (_src((3, 9, 11), 1), (5, 4), _origins(7, 5, 4, 9, 11, 1)),
    "one-channel": lambda: (_src((4, 1, 6, 7), 2), (3, 3), _origins(4, 3, 3, 6, 7, 2)),
    "40-channels-shared": lambda: (_src((40, 5, 6), 3), (4, 5), _origins(3, 4, 5, 5, 6, 3)),
    "1x1-crops": lambda: (_src((6, 2, 4, 5), 4), (1, 1), _origins(6, 1, 1, 4, 5, 4)),
    "paste-into-whole-map": lambda: (_src((2, 3, 5, 6), 5), (12, 13), torch.tensor([[-3, -4], [-7, -6]])),
    "crop-past-every-border": lambda: (_src((3, 4, 5), 6), (9, 8), torch.tensor([[-2, -2], [-8, -9], [5, 4], [0, 0]])),
    "integer-origins-float-dtype": lambda: (_src((2, 2, 7, 7), 7), (3, 4), _origins(2, 3, 4, 7, 7, 7).int()),
}
HALF_CASES = {
    "float16-per-window": lambda: (_src((3, 2, 6, 7), 8, torch.float16), (4, 5), _origins(3, 4, 5, 6, 7, 8)),
    "bfloat16-shared": lambda: (_src((2, 6, 7), 9, torch.bfloat16), (3, 4), _origins(4, 3, 4, 6, 7, 9)),
    "bfloat16-per-window": lambda: (_src((4, 3, 8, 9), 11, torch.bfloat16), (5, 6), _origins(4, 5, 6, 8, 9, 11)),
}


def _check(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got.cpu(), want, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("case", [*CASES, *HALF_CASES])
def test_gather_matches_reference(case, impl_device):
    impl, device = impl_device
    src, size, origin = {**CASES, **HALF_CASES}[case]()
    _check(window_gather(src.to(device), origin.to(device), size, impl=impl), _torch_impl.window_gather(src, origin, size))


@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")  # inf * 0, on purpose
@pytest.mark.parametrize("case", [*CASES, *HALF_CASES])
def test_mul_matches_reference(case, impl_device):
    impl, device = impl_device
    if case.startswith("bfloat16") and impl == "triton" and device == "cpu":
        pytest.skip("Triton's CPU interpreter rounds fp32 to bf16 toward zero (the GPU rounds to nearest)")
    maps, size, origin = {**CASES, **HALF_CASES}[case]()
    g = _src((origin.shape[0], maps.shape[-3], *size), 10, maps.dtype)
    g[0, 0, 0, 0] = float("inf")  # inf * 0 outside the source is NaN in the reference too
    _check(window_mul(g.to(device), maps.to(device), origin.to(device), impl=impl), _torch_impl.window_mul(g, maps, origin))


def test_bf16_products_round_to_nearest_even_as_torch_does():
    """The C++ CPU loops multiply bf16 natively: the product of two bf16 values is exact in fp32,
    rounded once; over a million random products (ties among them) every bit is torch's."""
    g = torch.Generator().manual_seed(12)
    a = (torch.randn(1, 1, 1000, 1000, generator=g) * 1e3).bfloat16()
    b = torch.randn(1, 1000, 1000, generator=g).bfloat16()
    got = window_mul(a, b, torch.zeros(1, 2, dtype=torch.long), impl="cpp")
    assert torch.equal(got.view(torch.int16), (a * b).view(torch.int16))


def test_kernels_take_16_bit_floats_and_no_other_dtype():
    """The dtype rule (dispatch.choose): 16-bit floats through the C++ CPU op (bf16 natively,
    fp16 through an fp32 copy; both exact), float64 only through torch (auto); an explicit kernel
    raises for it."""
    src, size, origin = HALF_CASES["float16-per-window"]()
    _check(window_gather(src, origin, size, impl="cpp"), _torch_impl.window_gather(src, origin, size))
    src16, size16, origin16 = HALF_CASES["bfloat16-per-window"]()
    _check(window_gather(src16, origin16, size16, impl="cpp"), _torch_impl.window_gather(src16, origin16, size16))
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        window_gather(src.double(), origin, size, impl="cpp")
    _check(window_gather(src.double(), origin, size), _torch_impl.window_gather(src.double(), origin, size))


def test_auto_takes_cpp_on_cpu(monkeypatch):
    from mind_engine.ops import selfcheck

    assert selfcheck.passed("cpp", torch.device("cpu"))  # before the reference is patched out
    calls = []
    monkeypatch.setattr(_torch_impl, "window_gather", lambda *a: calls.append(a))
    src, size, origin = CASES["shared"]()
    window_gather(src, origin, size)
    assert not calls


def test_clear_errors():
    src = torch.zeros(2, 3, 5, 5)
    with pytest.raises(ValueError, match="impl must be one of"):
        window_gather(src, torch.zeros(2, 2), (2, 2), impl="numba")
    with pytest.raises(ValueError, match="origin has 3 windows"):
        window_gather(src, torch.zeros(3, 2), (2, 2))
    with pytest.raises(ValueError, match="maps"):
        window_mul(torch.zeros(2, 4, 2, 2), src, torch.zeros(2, 2))
