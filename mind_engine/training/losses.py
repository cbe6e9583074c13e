"""Training losses on [0, 1] pixels: the paper's Charbonnier, an image-gradient term, and the
auxiliary motion loss of the training-only head (``motion_head``)."""
from __future__ import annotations

import torch


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """Mean Charbonnier penalty sqrt((pred - target)^2 + eps^2) over all elements (the paper's
    loss, eps = 0.1; pixels in [0, 1]; a small eps makes it nearly L1)."""
    d = pred.float() - target.float()
    return torch.sqrt(d * d + eps * eps).mean()


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between the horizontal and vertical finite differences of the two images:
    a blurred (blended) middle frame loses its edges, and this term charges for them directly."""
    p, t = pred.float(), target.float()
    dx = (p[..., :, 1:] - p[..., :, :-1]) - (t[..., :, 1:] - t[..., :, :-1])
    dy = (p[..., 1:, :] - p[..., :-1, :]) - (t[..., 1:, :] - t[..., :-1, :])
    return 0.5 * (dx.abs().mean() + dy.abs().mean())


def motion_loss(pred: torch.Tensor, motion: torch.Tensor, valid: torch.Tensor, scale: float) -> torch.Tensor:
    """Mean L1 error, in units of ``scale`` px, of the predicted (N, 2, H, W) frame 1 -> 3 motion
    against the true (N, H, W, 2) ``motion`` over ``valid`` (N, H, W) pixels."""
    err = (pred.float() - motion.permute(0, 3, 1, 2).float() / scale).abs().sum(1)
    w = valid.float()
    return (err * w).sum() / w.sum().clamp(min=1.0)
