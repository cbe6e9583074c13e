"""The exact engine: MindNet linearised at an image pair, its transpose run on batches of seeds,
by tiers of increasing speed that all compute tier 0's result (docs/architecture.md). Its
arguments arrive checked: it imports nothing from the public face (``mind_engine.api``, where
``Engine`` lives), the argument rules (``mind_engine.checks``) or the backends.

    linearisation.py  the state the backward needs (PReLU slopes, maxpool masks), per call (no hooks)
    transpose.py      backward_walk: the transposed network, once over the model's topology
    matching.py       query grids, search boxes, rows -> (peak, score); RowsTier, what a tier is
    oracle.py         t0: one autograd backward per query (the paper; the oracle)
    dense.py          t1: the transposed network on batches of whole-map seeds
    windows.py        per-query windows and the need regions of each level
    windowed.py       t2 / t3: t1 on windows, through torch or the fused kernels
    precision.py      bf16 / fp16 storage of the windowed tiers' state
    tiers.py          the tiers by backend and name; "auto"
    budget.py         the memory a pair needs, before anything runs
    refine.py         sub-pixel refinement and the forward-backward flag
    levels.py         how deep a pyramid is and each level's search radius
    densify.py        sparse grid matches -> a dense motion field, robustly
    pyramid.py        coarse to fine: warps and composition (any per-level matcher)
"""
