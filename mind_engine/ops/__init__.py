"""The fused operations of the windowed tiers, each with a plain-PyTorch reference and kernels.

    _torch_impl.py            the references: the executable specification of every op
    dispatch.py               which implementation runs where (torch, Triton, the C++/CUDA _C), the dtype rule
    selfcheck.py              each compiled implementation checked against the references before first use
                              (above the ops it runs: this package installs it in dispatch)
    window_ops.py             window_gather, window_mul: per-query crops
    match_reduce.py           rows -> (peak, score) (the matching definition)
    input_backward_match.py   the first layer's backward fused with match_reduce

Each op is a torch operator (``torch.ops.mind_engine.<name>``, with a fake implementation) whose
body picks the implementation. The kernels are in the repository's top-level folders: Triton in
``kernels/`` (the subpackage ``mind_engine.kernels``), C++/CUDA in ``csrc/`` (the module
``mind_engine._C``).
"""
from . import dispatch, selfcheck
from .input_backward_match import input_backward_match
from .match_reduce import match_reduce
from .window_ops import window_gather, window_mul

dispatch.use_self_check(selfcheck.passed)  # the check sits above the ops: none of them imports it

__all__ = ["input_backward_match", "match_reduce", "window_gather", "window_mul"]
