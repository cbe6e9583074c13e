"""Frame interpolation with MindNet: ``interpolate(img1, img3)`` returns the network's middle
frame in the caller's image type (its quality measures: ``mind_engine.evaluation.interpolation``).
"""
from __future__ import annotations

import torch

from .engine.matching import refuse_nonfinite
from .images import image_pair, pad_to_multiple, to_output_like
from .weights import resolve_model


@torch.no_grad()
def interpolate(img1, img3, model=None, device=None):
    """The middle frame between ``img1`` and ``img3``, same size, type, dtype and layout as
    ``img1`` (numpy HxWx3 uint8/float, or torch 3xHxW).

    ``model`` defaults to the bundled default model; ``device`` follows the rule of
    ``mind_engine.match`` (the one asked for, else the model's, else CUDA when available, else the
    CPU). The caller's model is checked and never moved, cast or switched to eval (a copy is, when
    needed: ``mind_engine.weights.resolve_model``); a non-finite output is refused.
    Inputs are padded at the bottom/right to the network's multiple by edge replication, the output is
    cropped back and clamped to [0, 1] before conversion.
    """
    model, device = resolve_model(model, device)
    t1, t3 = image_pair(img1, img3, device=device)
    x, (h, w) = pad_to_multiple(torch.stack([t1, t3]), model.config.multiple)
    out = model(x[0:1], x[1:2])
    refuse_nonfinite(out)
    mid = out[0, :, :h, :w].clamp(0, 1)
    return to_output_like(mid, img1)
