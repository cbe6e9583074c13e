"""The compiled ops as a user meets them: a broken ``mind_engine._C`` is reported, the C++
reduction runs on torch's thread count, and NaN rows reduce the same in every implementation."""
import builtins
import importlib
import warnings

import pytest
import torch

from mind_engine.ops import _torch_impl, dispatch
from mind_engine.ops.match_reduce import match_reduce


@pytest.fixture
def fresh_ext(monkeypatch):
    """``dispatch.ext`` re-run with ``mind_engine._C``'s import failing as the test says."""
    real_import = builtins.__import__

    def fail_with(error):
        def fake(name, globals=None, locals=None, fromlist=(), level=0):
            if fromlist and "_C" in fromlist and (globals or {}).get("__package__") == "mind_engine.ops":
                raise error
            return real_import(name, globals, locals, fromlist, level)

        monkeypatch.setattr(builtins, "__import__", fake)
        dispatch.ext.cache_clear()
        return dispatch.ext

    yield fail_with
    monkeypatch.setattr(builtins, "__import__", real_import)
    dispatch.ext.cache_clear()


def test_not_built_is_silent(fresh_ext):
    ext = fresh_ext(ModuleNotFoundError("No module named 'mind_engine._C'", name="mind_engine._C"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ext() is None


def test_built_but_broken_warns_once_with_the_error(fresh_ext):
    ext = fresh_ext(ImportError("_C.so: undefined symbol: _ZN11mind_engine3fooEv"))
    with pytest.warns(RuntimeWarning, match="built but failed to load .*undefined symbol"):
        assert ext() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ext() is None  # cached: the warning is not repeated


def test_a_missing_dependency_of_C_is_not_taken_for_not_built(fresh_ext):
    ext = fresh_ext(ModuleNotFoundError("No module named 'libfoo'", name="libfoo"))
    with pytest.warns(RuntimeWarning, match="could not be imported .*libfoo"):
        assert ext() is None


@pytest.mark.skipif(dispatch.ext() is None, reason="mind_engine._C is not built")
def test_cpp_reduction_runs_on_torch_s_thread_count(monkeypatch):
    C = dispatch.ext()
    seen = []

    class Spy:
        def __getattr__(self, name):
            return getattr(C, name)

        def match_reduce_cpu(self, *args):
            seen.append(args[-1])
            return C.match_reduce_cpu(*args)

    front_end = importlib.import_module("mind_engine.ops.match_reduce")  # the package's name is the function
    monkeypatch.setattr(front_end, "_ext", lambda: Spy())
    rows = torch.randn(64, 3, 40, 50, generator=torch.Generator().manual_seed(0))
    n = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 3):
            torch.set_num_threads(threads)
            results.append(match_reduce(rows, impl="cpp"))
    finally:
        torch.set_num_threads(n)
    assert seen == [1, 3]
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _nan_rows():
    g = torch.Generator().manual_seed(3)
    rows = torch.rand(5, 3, 24, 30, generator=g)
    rows[0, 1, 4, 5] = float("nan")  # one channel NaN: the others decide S there
    rows[1, :, 7, 8] = float("nan")  # every channel NaN at the true peak's place
    rows[1, :, 10, 11] = 5.0
    rows[2] = float("nan")  # a whole map NaN: S is 0 everywhere, peak 0, score 0
    rows[3, 0, 12, 12] = float("inf")
    rows[4, 2, 0:12, 0:12] = float("nan")
    return rows


@pytest.mark.parametrize("impl", ["torch", pytest.param("cpp", marks=pytest.mark.skipif(
    dispatch.ext() is None, reason="mind_engine._C is not built"))])
def test_nan_counts_as_zero_in_every_implementation(impl):
    rows = _nan_rows()
    box = torch.tensor([[0, 0, 30, 24]] * 5)
    idx, peak, score = match_reduce(rows, box, impl=impl)
    finite = torch.where(torch.isnan(rows), torch.zeros(()), rows)
    ref = _torch_impl.match_reduce(finite, box)
    torch.testing.assert_close(idx, ref[0], rtol=0, atol=0)
    torch.testing.assert_close(peak, ref[1], rtol=0, atol=0)
    torch.testing.assert_close(score, ref[2], rtol=1e-5, atol=0, equal_nan=True)
    assert idx[1] == 10 * 30 + 11 and peak[2] == 0 and score[2] == 0 and torch.isinf(peak[3])
