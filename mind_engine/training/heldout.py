"""The held-out validation of a run: the Charbonnier loss and the interpolation error of the
network's middle frames on the fixed validation triplets, beside the frame average's."""
from __future__ import annotations

import torch

from .losses import charbonnier


@torch.no_grad()
def validate(model, val, device, eps: float, amp: bool, chunk: int = 8) -> dict:
    """Charbonnier loss and mean interpolation error (IE, Middlebury's definition, 0-255 units)
    over the fixed held-out triplets; also the frame-average baseline's mean IE for reference."""
    was_training = model.training
    model.eval()
    i1s, i2s, i3s = val
    loss_sum, se_sum, se_avg, n = 0.0, 0.0, 0.0, 0
    for k in range(0, len(i1s), chunk):
        i1, i2, i3 = (t[k:k + chunk].to(device) for t in (i1s, i2s, i3s))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(i1, i3)
        out = out.float().clamp(0, 1)
        loss_sum += float(charbonnier(out, i2, eps)) * i1.shape[0]
        # IE per image as Middlebury defines it (L2 norm of the RGB difference, RMS over pixels)
        se_sum += float(((out - i2) * 255).pow(2).sum(1).mean(dim=(1, 2)).sqrt().sum())
        se_avg += float((((i1 + i3) / 2 - i2) * 255).pow(2).sum(1).mean(dim=(1, 2)).sqrt().sum())
        n += i1.shape[0]
    model.train(was_training)
    return {"val_loss": loss_sum / n, "val_ie": se_sum / n, "val_ie_average": se_avg / n}
