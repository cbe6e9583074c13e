"""Whether a device runs bf16 fast, asked in one place for training (``--amp auto``) and matching
(``precision=``): a GPU of compute capability 8 or more (Ampere on) and a CPU with bf16 dot
products (AVX512-BF16 or AMX), where oneDNN's bf16 convolutions beat fp32. Elsewhere bf16 is
emulated: on an AVX2-only Zen 3 the demo pair took 742.7 s in bf16 against 31.7 s in fp32
(issue 39), so an explicit bf16 there warns, once per process, and ``"auto"`` picks fp32.
"""
from __future__ import annotations

import warnings

import torch

_warned: set[str] = set()  # the devices whose slow bf16 has been warned about in this process


class SlowPrecisionWarning(UserWarning):
    """bf16 was asked for on a device without bf16 units, where it is emulated and much slower."""


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX), where oneDNN runs bf16
    convolutions faster than fp32 ones; elsewhere bf16 is emulated and slower."""
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, name, lambda: False)()) for name in
               ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def has_bf16_units(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively: a CUDA GPU of compute capability >= 8, a CPU
    with ``cpu_has_bf16``."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return device.type == "cpu" and cpu_has_bf16()


def choose_precision(asked: str, device: torch.device, storable) -> tuple[str, str]:
    """The precision to run and why ("" when as asked), for a checked ``asked`` ("auto", "fp32",
    "bf16", "fp16") on ``device`` with a tier that can store ``storable``: "auto" is bf16 where
    the device has bf16 units and the tier stores it, fp32 elsewhere. An explicit "bf16" without
    bf16 units runs as asked, with one ``SlowPrecisionWarning`` per device type and process."""
    fast = has_bf16_units(device)
    units = f"this {'GPU' if device.type == 'cuda' else 'CPU'} {'has' if fast else 'has no'} bf16 units"
    if asked == "auto":
        if fast and "bf16" in storable:
            return "bf16", f"auto: {units}"
        return "fp32", f"auto: {units}" if "bf16" in storable else "auto: the tier stores fp32 only"
    if asked == "bf16" and not fast and device.type not in _warned:
        _warned.add(device.type)
        slower = "about 20x slower than fp32 on an AVX2 CPU" if device.type == "cpu" else "slower than fp32"
        warnings.warn(f"precision='bf16' on a {device.type} without bf16 units (AVX512-BF16/AMX, or a GPU of compute "
                      f"capability 8+): bf16 is emulated there, {slower}; precision='fp32' or 'auto' is faster here",
                      SlowPrecisionWarning, stacklevel=3)
    return asked, ""
