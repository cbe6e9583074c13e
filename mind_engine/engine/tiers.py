"""The tiers by backend and name, and "auto": the fastest exact tier of a backend.

t0: one autograd backward per query (the paper; the oracle).  t1: the linearised backward on
batches of seeds.  t2: t1 on per-query windows.  t3: t2 through the fused kernels.
All are exact against t0 (tests/test_tiers.py). The torch tiers are registered here; the
backends that run the exported tier-1 graph ("onnxruntime", "tensorrt") register their own
(``mind_engine.backends``, imported by the public face), so the engine never imports them.
Each tier class carries its facts (``matching.RowsTier``); names are checked by the caller
(``mind_engine.checks.check_tier``).
"""
from __future__ import annotations

import torch

from .dense import Tier1
from .matching import RowsTier
from .oracle import Tier0
from .windowed import Tier2, Tier3

TIERS: dict[str, dict[str, type[RowsTier]]] = {}  # backend -> tier name -> tier class


def register(tier: type[RowsTier]) -> type[RowsTier]:
    """Add a tier class under its backend and name (usable as a class decorator)."""
    TIERS.setdefault(tier.backend, {})[tier.name] = tier
    return tier


for _tier in (Tier0, Tier1, Tier2, Tier3):
    register(_tier)


def tier_names() -> list[str]:
    """Every tier name of any backend, in order of speed."""
    return sorted({name for tiers in TIERS.values() for name in tiers}, key=lambda n: min(
        t[n].speed for t in TIERS.values() if n in t))


def tier_class(name: str, backend: str = "torch") -> type[RowsTier]:
    """The class of tier ``name`` on ``backend``; "auto": that backend's fastest."""
    tiers = TIERS[backend]
    return max(tiers.values(), key=lambda t: t.speed) if name == "auto" else tiers[name]


def make_tier(name: str, model, i1: torch.Tensor, i3: torch.Tensor, memory: int | None = None,
              backend: str = "torch", precision: str = "fp32") -> RowsTier:
    """Build tier ``name`` ("auto": the fastest) over one padded image pair.

    ``memory`` (bytes) bounds the working set of one chunk of seeds (tiers 1 to 3); ``precision``
    "bf16" or "fp16" stores the windowed tiers' state and windows in 16 bits (not exact).
    """
    return tier_class(name, backend)(model, i1, i3, memory=memory, precision=precision)
