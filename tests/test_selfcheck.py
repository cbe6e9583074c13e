"""The self-check before a compiled implementation's first use (mind_engine.ops.selfcheck): an
injected failing C++ CPU kernel (wrong values, or a launch error) is caught, warned about once,
and ``auto`` falls back to torch, whose results equal the reference."""
import warnings

import pytest
import torch

from mind_engine.ops import _torch_impl, match_reduce, selfcheck, window_gather, window_ops
from mind_engine.ops.selfcheck import SelfCheckWarning, problem

CPU = torch.device("cpu")
REAL = window_ops._cpp_crop


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.delenv(selfcheck.ENV, raising=False)
    selfcheck.reset()
    yield
    selfcheck.reset()


def _wrong_values(src, origin, size, g):
    return REAL(src, origin, size, g) + 1


def _launch_error(src, origin, size, g):
    raise RuntimeError("an illegal memory access was encountered")


@pytest.mark.parametrize("broken, what", [(_wrong_values, "differs from the torch reference"),
                                           (_launch_error, "illegal memory access")])
def test_a_failing_kernel_warns_once_and_auto_falls_back(monkeypatch, broken, what):
    monkeypatch.setattr(window_ops, "_cpp_crop", broken)
    p = problem()
    with pytest.warns(SelfCheckWarning, match=f"mind_engine._C kernels failed their self-check on cpu "
                                              f"\\(window_gather: .*{what}"):
        got = window_gather(p["src"], p["origin"], (5, 7))
    assert torch.equal(got, _torch_impl.window_gather(p["src"], p["origin"], (5, 7)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: no second warning
        rows = match_reduce(p["rows"], p["box"])  # every op of the failed implementation falls back
        assert all(torch.equal(a, b) for a, b in zip(rows, _torch_impl.match_reduce(p["rows"], p["box"])))
    assert selfcheck.passed("cpp", CPU) is False


def test_the_check_passes_for_the_real_kernels():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert selfcheck.run("cpp", CPU) is None
        assert selfcheck.passed("cpp", CPU)


def test_opting_out_runs_no_check(monkeypatch):
    monkeypatch.setenv(selfcheck.ENV, "0")
    monkeypatch.setattr(window_ops, "_cpp_crop", _launch_error)
    p = problem()
    with pytest.raises(RuntimeError, match="illegal memory access"):  # unchecked: the broken kernel runs
        window_gather(p["src"], p["origin"], (5, 7))


def test_an_explicit_impl_is_not_replaced(monkeypatch):
    monkeypatch.setattr(window_ops, "_cpp_crop", _launch_error)
    p = problem()
    with pytest.raises(RuntimeError, match="illegal memory access"):
        window_gather(p["src"], p["origin"], (5, 7), impl="cpp")
