"""The exact engine: MindNet linearised at an image pair, its transpose run on batches of seeds,
by tiers of increasing speed that all compute tier 0's result (docs/architecture.md).

    linearisation.py  the state the backward needs (PReLU slopes, maxpool masks), by forward hooks
    transpose.py      backward_walk: the transposed network, once over the model's topology
    matching.py       query grids, search boxes, rows -> (peak, score)
    oracle.py         t0: one autograd backward per query (the paper; the oracle)
    dense.py          t1: the transposed network on batches of whole-map seeds
    windows.py        per-query windows and the need regions of each level
    windowed.py       t2 / t3: t1 on windows, through torch or the fused kernels
    tiers.py          the tiers by name; "auto"
    refine.py         sub-pixel refinement and the forward-backward flag
    densify.py        sparse grid matches -> a dense motion field, robustly
    pyramid.py        coarse to fine: levels, warps, composition (any per-level matcher)
    engine.py         Engine: one pair, any queries
"""
from .engine import Engine
from .tiers import TIERS, make_tier

__all__ = ["Engine", "TIERS", "make_tier"]
