"""Frame interpolation with MindNet: ``interpolate(img1, img3)`` returns the network's middle
frame in the caller's image type (its quality measures: ``mind_engine.evaluation.interpolation``).
"""
from __future__ import annotations

import torch

from .images import image_pair, pad_to_multiple, to_output_like


@torch.no_grad()
def interpolate(img1, img3, model=None, device=None):
    """The middle frame between ``img1`` and ``img3``, same size, type, dtype and layout as
    ``img1`` (numpy HxWx3 uint8/float, or torch 3xHxW).

    ``model`` defaults to the bundled default model (:func:`mind_engine.weights.load_model`).
    Inputs are padded at the bottom/right to the network's multiple by edge replication, the output is
    cropped back and clamped to [0, 1] before conversion.
    """
    from .weights import load_model

    if device is None:
        device = next(model.parameters()).device if model is not None else torch.device("cpu")
    device = torch.device(device)
    if model is None:
        model = load_model(device=device)
    t1, t3 = image_pair(img1, img3, device=device)
    x, (h, w) = pad_to_multiple(torch.stack([t1, t3]), model.config.multiple)
    was_training = model.training
    model.eval()
    try:
        dtype = next(model.parameters()).dtype
        out = model(x[0:1].to(dtype), x[1:2].to(dtype))
    finally:
        model.train(was_training)
    mid = out[0, :, :h, :w].float().clamp(0, 1)
    return to_output_like(mid, img1)
