"""Argument rules shared by every entry point (the API, ``Engine``, ``match_many``, ``MindMatcher``
and every ``mind-engine`` sub-command): one rule per kind of argument, one message per problem.

Every check runs before any network does, and its error names the argument, what it got and what
was expected. Integers may be of any integral type (Python, numpy, a 0-d torch tensor) or a whole
float; bools, non-whole and non-finite values are refused. Names (tier, backend, precision,
device) are matched case-insensitively and returned in lower case. Image files and arrays are
checked in ``mind_engine.images``, checkpoint files in ``mind_engine.weights``.
"""
from __future__ import annotations

import math
import numbers
import operator
import os
from pathlib import Path

import numpy as np
import torch

from .engine.levels import FINEST_LEVELS, MIN_SIDE, auto_levels, max_levels
from .engine.precision import PRECISIONS
from .engine.tiers import TIERS, tier_class, tier_names
from .safe_write import file_identity

MIN_MEMORY = 16 << 20  # below this a chunk holds a handful of seeds and runs many times slower
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".tif", ".tiff", ".webp")  # what matplotlib writes
MODEL_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)  # the engine runs a float32 copy


# ----------------------------------------------------------------------------- numbers


def _number(value):
    """``value`` as a Python int or float when it is a real number (numpy scalars and 0-d torch
    tensors included), else None. A bool is not a number here: ``stride=True`` is a mistake."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.dtype == torch.bool or value.is_complex() or value.is_meta:
            return None
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return float(value) if isinstance(value, numbers.Real) else None


def _at_least(minimum: int) -> str:
    return {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")


def check_integer(value, name: str, minimum: int = 0, none: bool = False) -> int | None:
    """``value`` as an int >= ``minimum``; ``none``: None is allowed too (and returned)."""
    if value is None and none:
        return None
    n = _number(value)
    if n is None or not math.isfinite(n) or n != int(n) or n < minimum:
        raise ValueError(f"{name} must be {'None or ' if none else ''}{_at_least(minimum)}, got {value!r}")
    return int(n)


def check_real(value, name: str, positive: bool = False) -> float:
    """``value`` as a finite float (``positive``: > 0)."""
    n = _number(value)
    if n is None or not math.isfinite(n) or (positive and n <= 0):
        raise ValueError(f"{name} must be a {'positive' if positive else 'finite'} number, got {value!r}")
    return float(n)


def _interval(low, high, open_low: bool, open_high: bool) -> str:
    """The interval's name in a message: ``> 0``, ``>= 0``, ``in [0, 1]``, ``in (0, 1)`` ..."""
    if high is None:
        return f"{'>' if open_low else '>='} {low:g}"
    if low is None:
        return f"{'<' if open_high else '<='} {high:g}"
    return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


def check_interval(value, name: str, low: float | None = None, high: float | None = None,
                   open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a finite float between ``low`` and ``high`` (None: unbounded on that side;
    ``open_*``: that bound itself excluded), e.g. a learning rate (> 0) or a share (in [0, 1])."""
    n = _number(value)
    ok = n is not None and math.isfinite(n)
    if ok and low is not None:
        ok = n > low if open_low else n >= low
    if ok and high is not None:
        ok = n < high if open_high else n <= high
    if not ok:
        raise ValueError(f"{name} must be a number {_interval(low, high, open_low, open_high)}, got {value!r}")
    return float(n)


def check_fraction(value, name: str, open_ends: bool = False) -> float:
    """A share or fraction: a number in [0, 1] (``open_ends``: in (0, 1))."""
    return check_interval(value, name, 0.0, 1.0, open_ends, open_ends)


def check_stride(stride, name: str = "stride") -> int:
    return check_integer(stride, name, 1)


def check_radius(radius, name: str = "radius") -> int | None:
    """None (the whole image) or a non-negative integer."""
    return check_integer(radius, name, 0, none=True)


def check_levels(levels, hw: tuple[int, int] | None = None, radius=None, name: str = "levels") -> int | str:
    """A pyramid depth (``mind_engine.engine.pyramid``): a positive integer or "auto". With the
    pair's ``hw``, "auto" is resolved (for ``radius``) and a depth the pair cannot hold (its
    coarsest level under ``levels.MIN_SIDE`` pixels on the shorter side) is refused."""
    if isinstance(levels, str):
        if levels.strip().lower() != "auto":
            raise ValueError(f"{name} must be a positive integer or 'auto', got {levels!r}")
        return "auto" if hw is None else auto_levels(hw, radius)
    try:
        n = check_integer(levels, name, 1)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer or 'auto', got {levels!r}") from None
    if hw is not None and n > max_levels(hw):
        raise ValueError(f"{name}={n} is too deep for a {hw[1]}x{hw[0]} pair: its coarsest level would be under "
                         f"{MIN_SIDE} px on the shorter side; at most {max_levels(hw)} here (or 'auto')")
    return n


def check_finest_level(finest_level, levels: int, refine: str = "none", name: str = "finest_level") -> int:
    """The finest pyramid level MIND runs at (``levels.FINEST_LEVELS``), for a pyramid of
    ``levels`` (resolved): 1 needs two levels or more. "auto" (any case): 1 where a photometric
    refinement (``PHOTOMETRIC``) follows and the pyramid has two levels or more, else 0
    (``mind_engine.defaults.FINEST_LEVEL``)."""
    if isinstance(finest_level, str) and finest_level.strip().lower() == "auto":
        return 1 if refine in PHOTOMETRIC and levels >= 2 else 0
    try:
        n = check_integer(finest_level, name, 0)
    except ValueError:
        n = None
    if n not in FINEST_LEVELS:
        raise ValueError(f"{name} must be 'auto' or one of {', '.join(map(str, FINEST_LEVELS))}, got {finest_level!r}")
    if n >= levels:
        raise ValueError(f"{name}={n} needs a pyramid of {n + 1} levels or more; levels is {levels} for this pair "
                         f"and radius (pass levels={n + 1} or more)")
    return n


def check_not_both(first: str, a, second: str, b) -> None:
    """At most one of two alternative arguments is given."""
    if a is not None and b is not None:
        raise ValueError(f"pass {first}= or {second}=, not both")


THREADS_VARIABLE = "MIND_THREADS"  # the training command's default thread count


def max_threads() -> int:
    """The most torch CPU threads an option may ask for: this machine's cores (far more threads
    only slow torch down, and tens of thousands crash it)."""
    return os.cpu_count() or 1


def check_threads(value, name: str = "threads") -> int:
    """A torch CPU thread count: an integer in 1..``max_threads()``."""
    n = _number(value)
    top = max_threads()
    if n is None or not math.isfinite(n) or n != int(n) or not 1 <= n <= top:
        raise ValueError(f"{name} must be an integer in 1..{top} (this machine's cores), got {value!r}")
    return int(n)


def threads_from_environment() -> int | None:
    """``MIND_THREADS`` as a thread count (``check_threads``), None where it is unset or empty."""
    raw = os.environ.get(THREADS_VARIABLE, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = raw
    return check_threads(value, f"the environment variable {THREADS_VARIABLE}")


def check_unique(values, name: str, key=None) -> list:
    """A list option that names nothing twice (``key``: what makes two the same, e.g.
    ``safe_write.file_identity`` for files); returns it as a list."""
    seen = {}
    for v in values:
        k = v if key is None else key(v)
        if k in seen:
            same = "" if seen[k] == v else f" (as {seen[k]!r} too)"
            raise ValueError(f"{name} names {v!r} twice{same}; give each once")
        seen[k] = v
    return list(values)


def check_flag(value, name: str) -> bool:
    """A yes/no argument: a bool (numpy's too), not a truthy string or number."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def device_bytes(device: torch.device) -> int | None:
    """All the memory ``device`` has (None where unknown)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        return None


def check_memory(memory, device: torch.device | None = None, name: str = "memory") -> int | None:
    """None (each tier's default) or a working-memory budget of at least MIN_MEMORY bytes and,
    given ``device``, at most what the device has."""
    if memory is None:
        return None
    n = _number(memory)
    if n is None or not math.isfinite(n) or n != int(n):
        raise ValueError(f"{name} must be a number of bytes (None: the tier's default), got {memory!r}")
    if n < MIN_MEMORY:
        raise ValueError(f"{name} must be at least {MIN_MEMORY} bytes ({MIN_MEMORY >> 20} MiB), got {memory!r}: "
                         f"smaller budgets only make the engine slower (None: the tier's default)")
    total = device_bytes(device) if device is not None else None
    if total is not None and n > total:
        raise ValueError(f"{name}={memory!r} bytes is more than {device} has ({total / 2**30:.1f} GiB in all); "
                         f"it bounds working memory (None: the tier's default)")
    return int(n)


# ----------------------------------------------------------------------------- names


def check_choice(value, name: str, choices) -> str:
    """``value``, a string matched case-insensitively against ``choices``, in lower case."""
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    raise ValueError(f"unknown {name} {value!r}; {name} must be one of {list(choices)}")


def check_tier(tier, backend, precision="fp32") -> tuple[str, str, str]:
    """A known tier, backend and precision that can run together, as (tier, backend, precision),
    read from the tier classes' facts (``mind_engine.engine.tiers``; "auto" stays "auto", for the
    tier and for the precision, which ``mind_engine.hardware.choose_precision`` settles)."""
    backend = check_choice(backend, "backend", list(TIERS))
    tier = check_choice(tier, "tier", ["auto", *tier_names()])
    precision = check_choice(precision, "precision", ["auto", *PRECISIONS])
    if precision == "auto":
        return tier, backend, precision
    if tier != "auto" and tier not in TIERS[backend]:
        runs = [b for b, tiers in TIERS.items() if tier in tiers]
        raise ValueError(f"backend={backend!r} runs tier {' and '.join(TIERS[backend])} only; tier={tier!r} needs "
                         f"backend={' or '.join(map(repr, runs))}")
    if precision not in tier_class(tier, backend).precisions:
        able = [(b, n) for b, tiers in TIERS.items() for n, t in tiers.items() if precision in t.precisions]
        on = sorted({b for b, _ in able})
        raise ValueError(f"precision={precision!r} is for the windowed tiers ({', '.join(n for _, n in able)}, auto) "
                         f"on the {' or '.join(on)} backend, got tier={tier!r}, backend={backend!r}")
    return tier, backend, precision


def default_device() -> torch.device:
    """The one device rule of mind_engine: CUDA when torch can use it, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device, name: str = "device", here: bool = True) -> torch.device:
    """``device`` (None: ``default_device()``) as a torch.device; ``here``: one that exists on this
    machine (a Ray job's device is checked on its workers)."""
    if device is None:
        return default_device()
    try:
        d = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{name}={device!r} is not a device; expected 'cpu', 'cuda' or 'cuda:N'") from e
    if d.type not in ("cpu", "cuda"):
        raise ValueError(f"{name}={device!r}: mind_engine runs on 'cpu' or 'cuda' devices, got {d.type!r}")
    if d.type == "cuda" and here:
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={device!r}: CUDA is not available here (torch {torch.__version__}, "
                             f"CUDA build {torch.version.cuda or 'none'}); use device='cpu'")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return d


# ----------------------------------------------------------------------------- queries


def check_queries(points, hw: tuple[int, int] | None = None, name: str = "queries") -> np.ndarray:
    """Caller's (N, 2) (x, y) points as float64 (N = 0, also ``[]``, is allowed: it matches
    nothing); given the image's ``hw``, rounded to pixels and each checked to lie inside."""
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu()
    try:
        a = np.asarray(points)
        if a.dtype.kind == "b":
            raise TypeError("bools are not coordinates")
        if a.dtype.kind in "USO":  # "5" is refused here as stride="8" is: text is not a number
            raise TypeError(f"got {a.dtype.name} values such as {a.flat[0]!r}" if a.size else "not numbers")
        a = a.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be an (N, 2) array of numeric (x, y) points: {e}") from e
    if a.size == 0:
        a = a.reshape(0, 2)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{name} must be an (N, 2) array of (x, y) points, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contain NaN or inf")
    if hw is None:
        return a
    h, w = hw
    q = np.round(a)
    bad = (q[:, 0] < 0) | (q[:, 0] >= w) | (q[:, 1] < 0) | (q[:, 1] >= h)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} {name} lie outside the {w}x{h} (WxH) image, e.g. {a[bad][:3].tolist()}")
    return q


# ----------------------------------------------------------------------------- models


def nonfinite_tensors(tensors: dict) -> list[str]:
    """``name (k of n values)`` for each floating tensor holding NaN or inf."""
    return [f"{k} ({int((~torch.isfinite(t)).sum())} of {t.numel()} values)"
            for k, t in tensors.items() if t.is_floating_point() and not t.is_meta and not torch.isfinite(t).all()]


def check_model(model, name: str = "model") -> None:
    """A MindNet with real, finite weights of a floating dtype the engine can run (as float32)."""
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise TypeError(f"{name} must be a MindNet (mind_engine.load_model()), a checkpoint path or 'default', "
                        f"got {type(model).__name__}")
    state = model.state_dict()
    if any(t.is_meta for t in state.values()):
        raise ValueError(f"{name} is on the meta device: it holds no weights (load a checkpoint with "
                         f"mind_engine.load_model, or load_state_dict(..., assign=True))")
    odd = sorted({str(t.dtype) for t in state.values() if t.dtype not in MODEL_DTYPES})
    if odd:
        raise ValueError(f"{name} has weights of dtype {', '.join(odd)}; the engine runs float32 "
                         f"(float64, float16 and bfloat16 models are run as a float32 copy)")
    broken = nonfinite_tensors(state)
    if broken:
        raise ValueError(f"{name} holds non-finite (NaN or inf) weights, a broken or diverged model: "
                         + ", ".join(broken))
    if state and all(not t.is_floating_point() or not t.any() for t in state.values()):
        raise ValueError(f"{name} holds only zero weights, a blank model: its images are constant and its "
                         f"matches and scores mean nothing")


# ----------------------------------------------------------------------------- paths


def _existing_folder(p: Path) -> Path:
    """The first existing ancestor of ``p``: it decides whether the missing folders can be made."""
    folder = p.parent
    while not folder.exists():
        folder = folder.parent
    return folder


def check_writable(path, name: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """An output file whose folder exists (or can be made) and can be written, before any work."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{name} {path} is a folder; give a file name")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise ValueError(f"{name} {path}: unsupported file type {p.suffix or '(none)'!r}; use one of {list(suffixes)}")
    folder = _existing_folder(p)
    if not folder.is_dir() or not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ValueError(f"{name} {path} cannot be written (no write permission in {folder})")
    return p


def check_folder(path, name: str) -> Path:
    """An output folder that exists (or can be made) and can be written, before any work."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name} {path} is a file; give a folder")
    folder = p if p.is_dir() else _existing_folder(p)
    if not folder.is_dir():
        raise ValueError(f"{name} {path} cannot be made: {folder} is a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {path} cannot be written (no write permission in {folder})")
    return p


def check_distinct(outputs: dict, inputs: dict) -> None:
    """No output path (name -> path, None for none) is another output or an input, as a file
    (``safe_write.file_identity``: device and inode, through hard and symbolic links): nothing a
    command reads or writes is overwritten by what it writes."""
    seen = {}
    for name, path in [*inputs.items(), *outputs.items()]:
        if path is None:
            continue
        key = file_identity(path)
        if key in seen and name in outputs:
            raise ValueError(f"{name} {path} is also {seen[key]} (the same file, through a link or the same path); "
                             f"give another file")
        seen.setdefault(key, name)


REFINE_METHODS = ("lk", "dis", "peak", "none")  # mind_engine.refinement's methods
PHOTOMETRIC = ("lk", "dis")  # those that move the ends by the images themselves, finishing the last pixels


def check_refine(refine, name: str = "refine") -> str:
    """A refinement method of ``mind_engine.refinement`` (``REFINE_METHODS``, any case)."""
    return check_choice(refine, name, REFINE_METHODS)
