"""How every ``mind-engine`` sub-command parses and checks its options.

Options are parsed as numbers or strings only; what they must be is decided once, by the rules of
``mind_engine.checks`` (``check_options``), under the option's own name, so the command line and
the API refuse the same values with the same message. Every option's help shows its default.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np

from .checks import (REFINE_METHODS, check_device, check_integer, check_levels, check_queries, check_radius, check_real,
                     check_stride, check_threads)
from .defaults import LEVELS, RADIUS, REFINE, STRIDE


def refuse(prog: str, message: str) -> NoReturn:
    """A refused value: one line ``<prog>: error: ...`` and exit status 2, before any work, as every
    command refuses one (argparse's ``error`` would print the usage first; it still does for what
    argparse itself rejects: an unknown option, a missing value)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


# option -> rule(value, its name): what the value must be, applied to every sub-command that has it
RULES = {
    "stride": check_stride,
    "radius": check_radius,
    "levels": lambda v, n: check_levels(v, name=n),
    "top": lambda v, n: check_integer(v, n, 1),
    "gap": lambda v, n: check_integer(v, n, 1),
    "workers": lambda v, n: check_integer(v, n, 1),
    "threads": check_threads,
    "retries": lambda v, n: check_integer(v, n, 0),
    "workspace_gib": lambda v, n: check_real(v, n, positive=True),
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in its help, unless the help already says it (or it is a flag or required)."""

    def _get_help_string(self, action):
        if "default" in (action.help or "").lower() or action.nargs == 0 or action.required:
            return action.help
        return super()._get_help_string(action)


def subcommand(sub, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
    """A sub-command of ``mind-engine`` whose help shows every default."""
    return sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter, **kwargs)


def number(s: str):
    """An option's number as written (int or float); ``RULES`` decide what it must be."""
    for kind in (int, float):
        try:
            return kind(s)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"not a number: {s!r}")


def choice(s: str) -> str:
    """A named choice (tier, precision, graph), matched case-insensitively as the API matches it."""
    return s.strip().lower()


def radius(s: str):
    """``none`` or ``full`` (the whole image), else a number."""
    return None if s.lower() in ("none", "full") else number(s)


def levels(s: str):
    """``auto``, else a number (``checks.check_levels`` decides)."""
    return "auto" if s.strip().lower() == "auto" else number(s)


def read_points(path, name: str) -> np.ndarray:
    """A text file of points, one ``x,y`` a line (comma, tab or spaces between; blank lines and
    ``#`` comments skipped), as an (N, 2) float array. A file that cannot be read, a line that is
    not two numbers, or no point at all is refused in one line naming the file and the line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{name} {path} cannot be read: {getattr(e, 'strerror', None) or e}") from None
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        fields = [f for f in re.split(r"[,\s]+", line.split("#", 1)[0]) if f]
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            rows.append([float(f) for f in fields])
        except ValueError:
            raise ValueError(f"{name} {path} line {i}: expected two numbers x,y, got {line.strip()!r}") from None
    if not rows:
        raise ValueError(f"{name} {path} holds no x,y line")
    return np.array(rows, dtype=np.float64)


def add_match_options(sp) -> None:
    """--stride, --radius and --levels, with the defaults of ``mind_engine.match``
    (``mind_engine.defaults``), as every command that matches pairs takes them."""
    sp.add_argument("--stride", type=number, default=STRIDE, help="query grid stride in pixels")
    sp.add_argument("--radius", type=radius, default=RADIUS, help="search radius around each query ('none': the "
                                                                   "whole image)")
    sp.add_argument("--levels", type=levels, default=LEVELS,
                    help="pyramid levels: 'auto' or K > 1 match coarse to fine, as deep as the radius needs; 1 is "
                         "the paper's single-scale matcher (motion up to what the model follows, a few px)")
    sp.add_argument("--refine", type=str.lower, choices=REFINE_METHODS, default=REFINE,
                    help="refinement after the network: lk (OpenCV's LK started at each match), dis (OpenCV's DIS "
                         "flow started from the matches), peak (quadratic sub-pixel peak), each with a forward-"
                         "backward check; none (the network's readout)")


def add_queries_option(sp) -> None:
    """--queries FILE, as every command that matches takes it (``read_queries`` reads it)."""
    sp.add_argument("--queries", default=None, metavar="FILE",
                    help="match at these points instead of a grid: a text file of x,y lines (default: the grid)")


def read_queries(path) -> np.ndarray | None:
    """--queries' points, read by ``read_points`` and checked by ``checks.check_queries`` (None: no file)."""
    return None if path is None else check_queries(read_points(path, "--queries"), name="--queries")


def add_threads_option(sp, help: str = "torch CPU threads (default: torch's own)") -> None:
    """--threads N: torch CPU threads (``RULES`` check it)."""
    sp.add_argument("--threads", type=number, default=None, help=help)


def add_model_options(sp) -> None:
    """--weights and --device, as every command that runs the network takes them."""
    sp.add_argument("--weights", default=None,
                    help="checkpoint (.safetensors); default: the bundled model (also named 'default')")
    sp.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available, else cpu)")


def flag(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def check_options(a: argparse.Namespace, rules: dict | None = None) -> None:
    """Every option of ``a`` that ``rules`` (default ``RULES``; and the device rule) know, checked
    and normalised in place, before the command runs. A Ray job's ``--device`` is checked on its
    workers."""
    for attr, rule in (RULES if rules is None else rules).items():
        value = getattr(a, attr, None)
        if value is not None:
            setattr(a, attr, rule(value, flag(attr)))
    if getattr(a, "device", None) is not None:
        ray = getattr(a, "ray", False) or getattr(a, "ray_address", None)
        a.device = str(check_device(a.device, "--device", here=not ray))
