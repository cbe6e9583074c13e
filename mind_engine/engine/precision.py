"""Reduced-precision storage (T4): the linearised state and the windows in bf16 or fp16.

The forward that decides every PReLU sign and maxpool argmax runs in fp32, so the linearisation
is the fp32 one; only what is stored is rounded: the slope maps (1 or the PReLU slope), the
pool masks (0 or 1, exact), the weights of the transposed network and every gradient crop
between layers. Each convolution accumulates in fp32 (oneDNN on the CPU, cuDNN on a GPU) and
rounds its output once; on the CPU the crops are channels last, where oneDNN runs bf16 on the
AVX512-BF16 dot products (about twice fp32's speed on the dev machine's EPYC; NCHW bf16 gained
nothing). The fused first layer and the matching reduction read the 16-bit crops and compute in
fp32. The result is no longer exact: ``bench/precision.py`` measures the
agreement of match points and the score error against fp32.
"""
from __future__ import annotations

import copy

import torch

from .linearisation import Linearisation

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def stored_in(model, lin: Linearisation, precision: str):
    """The model whose weights the transposed network reads, with ``lin``'s state cast in place,
    both in ``precision``'s dtype (the model itself for fp32); ``precision`` is checked
    (``checks.check_tier``) by the caller."""
    dtype = PRECISIONS[precision]
    if dtype == torch.float32:
        return model
    low = copy.deepcopy(model).to(dtype)
    same = dict(zip(model.modules(), low.modules()))  # the state is keyed by the model's modules
    lin.slopes = {same[k]: v.to(dtype) for k, v in lin.slopes.items()}
    lin.pool_masks = {same[k]: v.to(dtype) for k, v in lin.pool_masks.items()}
    lin.out = lin.out.to(dtype)
    lin.model = low
    return low
