"""Which implementation of a fused op runs where: shared by every op's dispatcher.

Implementations: ``torch`` (the reference in ``_torch_impl``), ``triton`` (``mind_engine.kernels``,
the top-level ``kernels/``; CUDA tensors, or CPU ones under TRITON_INTERPRET=1) and ``cpp``
(``mind_engine._C``: its CUDA kernels for CUDA tensors, its C++ loops for CPU ones). ``auto``
takes cpp on a GPU when built with CUDA, else triton there; on the CPU it takes the op's ``cpu``
choice when the extension is built, each only once it has passed its self-check in this process,
else the next one: the check is the gate ``mind_engine.ops`` installs (``selfcheck.passed``, with
``use_self_check``), so that the ops never import the self-check that runs them.
Every op body runs through ``choose`` (the one dtype rule) and ``device_guard``.
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from typing import Callable

import torch

IMPLS = ("auto", "torch", "triton", "cpp")
CUDA_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
_self_check: Callable[[str, torch.device], bool] | None = None


def use_self_check(passed: Callable[[str, torch.device], bool]) -> None:
    """Make ``passed(impl, device)`` what ``auto`` asks before it runs a compiled implementation on
    a device (``mind_engine.ops`` installs ``selfcheck.passed`` once its ops are defined)."""
    global _self_check
    _self_check = passed


@functools.cache
def ext():
    """The compiled module, or None when this install has none. A module that is built but fails
    to load (an undefined symbol, a missing library) is reported in a warning, once: the torch
    path that runs instead is several times slower."""
    try:
        from .. import _C
    except ModuleNotFoundError as e:
        if e.name != "mind_engine._C":
            warnings.warn(f"mind_engine._C could not be imported ({e}); using the slower torch path", RuntimeWarning)
        return None
    except ImportError as e:
        warnings.warn(f"mind_engine._C is built but failed to load ({e}); using the slower torch path "
                      f"(rebuild with `pip install -e .`)", RuntimeWarning)
        return None
    return _C


@functools.cache
def cpp_cuda() -> bool:
    C = ext()
    return C is not None and C.cuda_available()


@functools.cache
def triton() -> bool:
    from ..kernels import triton_installed

    return triton_installed()


def available(impl: str, device: torch.device | str = "cpu") -> bool:
    """Whether ``impl`` can run on tensors of ``device``."""
    device = torch.device(device)
    if impl in ("auto", "torch"):
        return True
    if impl == "cpp":
        return cpp_cuda() if device.type == "cuda" else device.type == "cpu" and ext() is not None
    if impl == "triton":
        interpreted = device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
        return (device.type == "cuda" or interpreted) and triton()
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


def resolve(impl: str, device: torch.device, cpu: str = "cpp") -> str:
    """The implementation that ``impl`` names on ``device`` (``cpu``: what auto takes on the CPU),
    or a RuntimeError that says why it cannot run there."""
    if impl == "auto":
        if device.type == "cuda":
            order = [i for i, ok in (("cpp", cpp_cuda()), ("triton", triton())) if ok]
        else:
            order = [cpu] if device.type == "cpu" and cpu != "torch" and available(cpu, device) else []
        return next((i for i in order if _self_check(i, device)), "torch")
    if available(impl, device):
        return impl
    if impl == "cpp":
        if ext() is None:
            raise RuntimeError("impl='cpp': mind_engine._C is not built (reinstall with `pip install -e .`)")
        if device.type == "cuda" and not ext().cuda_compiled():
            raise RuntimeError("impl='cpp' on a CUDA tensor: mind_engine._C was built without CUDA (no nvcc)")
        raise RuntimeError(f"impl='cpp' cannot run on {device}: no usable CUDA device for mind_engine._C")
    if not triton():
        raise RuntimeError("impl='triton': Triton is not installed (pip install 'mind-engine[triton]')")
    raise RuntimeError(f"impl='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 for CPU ones), got {device}")


def stream(device: torch.device) -> int:
    """The current CUDA stream of ``device`` as an int, for the ``_C`` CUDA ops."""
    return torch.cuda.current_stream(device).cuda_stream


def native(impl: str, t: torch.Tensor, cpu_bf16: bool = False) -> bool:
    """Whether ``impl``'s kernel reads ``t``'s dtype itself: float32 everywhere, float16 and
    bfloat16 on CUDA and in Triton, bfloat16 in the C++ CPU loops of the ops that say so
    (``cpu_bf16``: the window crops and the fused first layer); the match reduction's C++ CPU
    loop reads an fp32 copy of the 16-bit types."""
    return (t.dtype == torch.float32 or (t.dtype in CUDA_DTYPES and (t.is_cuda or impl == "triton"))
            or (cpu_bf16 and impl == "cpp" and t.dtype == torch.bfloat16))


def choose(impl: str, t: torch.Tensor, cpu: str = "cpp", any_float: bool = False) -> str:
    """The implementation an op runs for ``impl`` and tensor ``t``, by the one dtype rule of every
    op: kernels take float32, float16 and bfloat16 (``native``, else an fp32 copy, which changes
    nothing for the window ops and match_reduce: windows move values, a product of two 16-bit
    floats is exact in fp32, max |.| commutes with the cast). ``any_float`` ops (the match
    reductions) take any float dtype through that copy; the window ops take another dtype only
    through torch (``auto``), and an explicit kernel raises."""
    if t.dtype in CUDA_DTYPES or any_float:
        return resolve(impl, t.device, cpu)
    if impl in ("auto", "torch"):
        return "torch"
    resolve(impl, t.device, cpu)  # an unknown or unavailable impl says so first
    raise ValueError(f"impl={impl!r} takes float32, float16 or bfloat16, got {t.dtype} on {t.device}")


def kernel_input(impl: str, t: torch.Tensor, cpu_bf16: bool = False) -> torch.Tensor:
    """``t`` as ``impl``'s kernel reads it: contiguous, in fp32 unless ``native`` (converted and
    laid out in one pass: a channels-last bf16 crop took half the time so)."""
    if native(impl, t, cpu_bf16):
        return t.contiguous()
    return t.to(torch.float32, memory_format=torch.contiguous_format)


def device_guard(device: torch.device):
    """Make ``device`` current around a launch (CUDA kernels and Triton use the current device),
    so that tensors on cuda:1 run on cuda:1."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def call(op, body, *args):
    """Run a fused op: its registered torch operator ``op`` while ``torch.compile`` traces (which
    needs the operator and its fake implementation), else its ``body`` directly. The eager path
    skips the dispatcher, whose first custom-op call imports torch._dynamo (1.2-1.3 s of CPU on
    the dev machine, paid by the first match of a process) and costs ~20 us a call."""
    return op(*args) if torch.compiler.is_compiling() else body(*args)
