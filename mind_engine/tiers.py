"""The engine's tiers by name, and the choice of the fastest exact one the machine can run."""
from __future__ import annotations

import torch

from .tier0 import Tier0

TIERS = {"t0": Tier0}


def make_tier(name: str, model, i1: torch.Tensor, i3: torch.Tensor):
    """Build tier ``name`` ("auto": the fastest exact tier available) over one padded image pair."""
    if name == "auto":
        name = "t0"
    if name not in TIERS:
        raise ValueError(f"unknown tier {name!r}; choose one of {['auto', *TIERS]}")
    return TIERS[name](model, i1, i3)
