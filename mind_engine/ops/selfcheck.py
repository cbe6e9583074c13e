"""Self-check of a compiled implementation before its first use on a device.

The first time ``auto`` would run a compiled implementation (the ``_C`` CUDA kernels, Triton,
the ``_C`` C++ loops on the CPU) on a device in this process, all four ops of that implementation
run once on a small fixed problem and are compared with the torch references. A launch error
or a mismatch warns once (``SelfCheckWarning``, saying what failed) and ``auto`` falls back to
the next implementation for the rest of the process (CUDA -> Triton -> torch; C++ -> torch).
A few milliseconds per implementation and device (a first Triton call also compiles its
kernels). An explicit ``impl=`` runs what it names, unchecked. Opt out with
``MIND_ENGINE_SELF_CHECK=0``.

The check sits above the ops it runs (none of them imports it): ``mind_engine.ops`` hands
``passed`` to ``dispatch.use_self_check``.
"""
from __future__ import annotations

import os
import warnings

import torch

from . import _torch_impl as ref
from .input_backward_match import input_backward_match
from .match_reduce import match_reduce
from .window_ops import window_gather, window_mul

ENV = "MIND_ENGINE_SELF_CHECK"
NAMES = {"cpp": "mind_engine._C", "triton": "Triton"}
_passed: dict[tuple[str, str], bool] = {}


class SelfCheckWarning(RuntimeWarning):
    """A compiled implementation failed its self-check; ``auto`` no longer uses it in this process."""


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def passed(impl: str, device: torch.device) -> bool:
    """Whether ``impl`` may run on ``device``: its self-check passed (run now if it has not run
    in this process), or checks are off."""
    if impl == "torch" or not enabled():
        return True
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (impl, str(device))
    if key not in _passed:
        failure = run(impl, device)
        _passed[key] = failure is None
        if failure is not None:
            kind = "CUDA kernels" if impl == "cpp" and device.type == "cuda" else "kernels"
            warnings.warn(f"mind_engine: the {NAMES.get(impl, impl)} {kind} failed their self-check on {device} "
                          f"({failure}); impl='auto' does not use them in this process (set {ENV}=0 to skip the "
                          "check)", SelfCheckWarning, stacklevel=2)
    return _passed[key]


def reset() -> None:
    """Forget every result (tests)."""
    _passed.clear()


def problem():
    """The fixed problem: small, every border crossed, boxes inside the images and the windows."""
    g = torch.Generator().manual_seed(1234)
    src = torch.randn(3, 2, 9, 11, generator=g)
    origin = torch.tensor([[-3, -2], [4, 5], [8, -1]])
    rows = torch.randn(3, 3, 24, 26, generator=g)
    box = torch.tensor([[0, 0, 26, 24], [3, 4, 15, 17], [20, 2, 26, 9]])
    grad = torch.randn(2, 4, 12, 14, generator=g)
    weight = torch.randn(4, 6, 3, 3, generator=g)
    return dict(src=src, shared=src[0], origin=origin, g=torch.randn(3, 2, 4, 6, generator=g), rows=rows, box=box,
                grad=grad, weight=weight, w_origin=torch.tensor([[0, 0], [3, 2]]),
                w_box=torch.tensor([[1, 1, 10, 8], [4, 3, 14, 12]]), hw=(16, 18))


def _compare(name: str, got, want, exact: bool):
    for a, b in zip(got, want):
        a = a.cpu()
        ok = torch.equal(a, b) if exact or not b.is_floating_point() else torch.allclose(a, b, rtol=1e-4, atol=0)
        if not ok:
            raise AssertionError(f"{name} differs from the torch reference")


def run(impl: str, device: torch.device) -> str | None:
    """Run ``impl``'s four ops on ``problem()`` on ``device``; None if all agree with the
    references, else what failed."""
    p = problem()
    d = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in p.items()}
    checks = [
        ("window_gather", lambda: [window_gather(d["src"], d["origin"], (4, 6), impl=impl),
                                   window_gather(d["shared"], d["origin"], (4, 6), impl=impl)],
         lambda: [ref.window_gather(p["src"], p["origin"], (4, 6)), ref.window_gather(p["shared"], p["origin"], (4, 6))],
         True),
        ("window_mul", lambda: [window_mul(d["g"], d["src"], d["origin"], impl=impl)],
         lambda: [ref.window_mul(p["g"], p["src"], p["origin"])], True),
        ("match_reduce", lambda: match_reduce(d["rows"], d["box"], impl=impl),
         lambda: ref.match_reduce(p["rows"], p["box"]), False),
        ("input_backward_match",
         lambda: input_backward_match(d["grad"], d["weight"], d["w_origin"], d["w_box"], p["hw"], impl=impl),
         lambda: ref.input_backward_match(p["grad"], p["weight"], p["w_origin"], p["w_box"], p["hw"]), False),
    ]
    for name, got, want, exact in checks:
        try:
            out = got()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            _compare(name, out, want(), exact)
        except Exception as e:  # a launch error or a mismatch: both mean "do not use"
            return f"{name}: {type(e).__name__}: {e}"
    return None
