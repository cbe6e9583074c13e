"""Argument checks shared by the API, the Engine and the CLI: one place, one message per problem.

Every check runs before any network does, and its error names the argument, what it got and what
was expected. Images are checked in ``mind_engine.images``, checkpoints in ``mind_engine.weights``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

MIN_MEMORY = 16 << 20  # below this a chunk holds a handful of seeds and runs many times slower
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".tif", ".tiff", ".webp")


def default_device() -> torch.device:
    """The one device rule of mind_engine: CUDA when torch can use it, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device, name: str = "device") -> torch.device:
    """``device`` (None: ``default_device()``) as a torch.device that exists on this machine."""
    if device is None:
        return default_device()
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{name}={device!r} is not a device; expected 'cpu', 'cuda' or 'cuda:N'") from e
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={device!r}: CUDA is not available here (torch {torch.__version__}, "
                             f"CUDA build {torch.version.cuda or 'none'}); use device='cpu'")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif d.type != "cpu":
        raise ValueError(f"{name}={device!r}: mind_engine runs on 'cpu' or 'cuda' devices, got {d.type!r}")
    return d


def _whole(value, expected: str) -> int:
    """``value`` as an int when it is a finite whole number (not a bool), else a ValueError
    ``"{expected}, got {value!r}"``."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or int(value) != value):
        raise ValueError(f"{expected}, got {value!r}")
    return int(value)


def check_stride(stride) -> int:
    expected = "stride must be a positive integer"
    value = _whole(stride, expected)
    if value < 1:
        raise ValueError(f"{expected}, got {stride!r}")
    return value


def check_radius(radius) -> int | None:
    """None (the whole image) or a non-negative integer."""
    if radius is None:
        return None
    expected = "radius must be None or a non-negative integer"
    value = _whole(radius, expected)
    if value < 0:
        raise ValueError(f"{expected}, got {radius!r}")
    return value


def check_memory(memory) -> int | None:
    """None (each tier's default) or a working-memory budget of at least MIN_MEMORY bytes."""
    if memory is None:
        return None
    value = _whole(memory, "memory must be a number of bytes")
    if value < MIN_MEMORY:
        raise ValueError(f"memory must be at least {MIN_MEMORY} bytes ({MIN_MEMORY >> 20} MiB), got {memory!r}: "
                         f"smaller budgets only make the engine slower (None: the tier's default)")
    return value


def check_tier(tier: str, backend: str, precision: str = "fp32") -> None:
    """A known tier, backend and precision, and a combination of them that can run together."""
    from .engine.precision import storage_dtype
    from .engine.tiers import BACKENDS, TIERS

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if tier != "auto" and tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; choose one of {['auto', *TIERS]}")
    if backend != "torch" and tier not in ("auto", "t1"):
        raise ValueError(f"backend={backend!r} runs the exported tier-1 graph; tier={tier!r} needs backend='torch'")
    storage_dtype(precision)
    if precision != "fp32" and (backend != "torch" or tier not in ("auto", "t2", "t3")):
        raise ValueError(f"precision={precision!r} is for the windowed tiers (t2, t3, auto) on the torch backend, "
                         f"got tier={tier!r}, backend={backend!r}")


def check_writable(path, name: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """An output path whose folder exists (or can be made) and can be written, before any work."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{name} {path} is a folder; give a file name")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise ValueError(f"{name} {path}: unsupported file type {p.suffix or '(none)'!r}; use one of {list(suffixes)}")
    folder = p.parent
    while not folder.exists():  # the first existing ancestor decides whether the folders can be made
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ValueError(f"{name} {path} cannot be written (no write permission in {folder})")
    return p
