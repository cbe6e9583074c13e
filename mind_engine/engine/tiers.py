"""The engine's tiers by name, and the choice of the fastest exact one the machine can run.

t0: one autograd backward per query (the paper; the oracle).  t1: the linearised backward on
batches of seeds.  t2: t1 on per-query windows.  t3: t2 through the fused kernels.
All are exact against t0 (tests/test_tiers.py). Backends other than torch run the exported
tier-1 graph: "onnxruntime" and "tensorrt" (``mind_engine.backends``).
"""
from __future__ import annotations

import torch

from ..checks import check_tier
from .dense import Tier1
from .oracle import Tier0
from .windowed import Tier2, Tier3

TIERS = {"t0": Tier0, "t1": Tier1, "t2": Tier2, "t3": Tier3}
FASTEST_FIRST = ("t3", "t2")
BACKENDS = ("torch", "onnxruntime", "tensorrt")


def make_tier(name: str, model, i1: torch.Tensor, i3: torch.Tensor, memory: int | None = None,
              backend: str = "torch", precision: str = "fp32"):
    """Build tier ``name`` ("auto": the fastest exact tier available) over one padded image pair.

    ``memory`` (bytes) bounds the working set of one chunk of seeds (tiers 1 to 3); ``precision``
    "bf16" or "fp16" stores the windowed tiers' state and windows in 16 bits (not exact).
    """
    name, backend, precision = check_tier(name, backend, precision)
    if backend != "torch":
        if backend == "onnxruntime":
            from ..backends.onnx.runtime import OnnxRuntimeTier

            return OnnxRuntimeTier(model, i1, i3, memory=memory)
        from ..backends.tensorrt.runtime import TensorRTTier

        return TensorRTTier(model, i1, i3, memory=memory)
    if name == "auto":
        name = FASTEST_FIRST[0]
    if name == "t0":
        return Tier0(model, i1, i3)
    if name in ("t2", "t3"):
        return TIERS[name](model, i1, i3, memory=memory, precision=precision)
    return TIERS[name](model, i1, i3, memory=memory)
