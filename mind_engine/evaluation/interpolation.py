"""The interpolation metrics of the paper's supplement: ``interpolation_error`` (IE, equation 6)
and ``normalized_interpolation_error`` (NE, equation 7), which follow the Middlebury optical-flow
benchmark: S. Baker, D. Scharstein, J. P. Lewis, S. Roth, M. J. Black, R. Szeliski, "A Database
and Evaluation Methodology for Optical Flow", IJCV 92(1), 2011, section 4.2 (the supplement of
Long et al. 2016 quotes it as its reference [45]).
"""
from __future__ import annotations

import numpy as np
import torch

GRADIENT_EPS = 1.0  # epsilon of NE (Middlebury; equation 7 of the supplement)


def _as_255(img) -> np.ndarray:
    """Image -> float64 HxWxC array in 0-255 units (uint8 as is, floats in [0, 1] scaled)."""
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        if t.dim() == 3 and t.shape[0] in (1, 3) and t.shape[-1] not in (1, 3):
            t = t.permute(1, 2, 0)
        a = t.numpy()
    else:
        a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype == np.uint8:
        return a.astype(np.float64)
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 257.0
    return a.astype(np.float64) * 255.0


def interpolation_error(pred, gt) -> float:
    """IE (supplement eq. 6, Middlebury): ``sqrt(1/N sum_(x,y) ||I(x,y) - I_GT(x,y)||^2)``,
    the RMS over the N pixels of the L2 norm of the RGB difference, in 0-255 units.

    Images are numpy HxWxC (uint8, or float in [0, 1]) or torch CxHxW / HxWxC."""
    p, g = _as_255(pred), _as_255(gt)
    if p.shape != g.shape:
        raise ValueError(f"IE needs images of one shape; got {p.shape} and {g.shape}")
    return float(np.sqrt(((p - g) ** 2).sum(-1).mean()))


def normalized_interpolation_error(pred, gt, eps: float = GRADIENT_EPS) -> float:
    """NE (supplement eq. 7, Middlebury, Baker et al. IJCV 2011 sec. 4.2):

        NE = sqrt( 1/N sum_(x,y) ||I(x,y) - I_GT(x,y)||^2 / (||grad I_GT(x,y)||^2 + eps) ),  eps = 1.0

    in 0-255 units; for colour images the squared difference is the squared L2 norm of the RGB
    difference and the squared gradient magnitude is summed over the colour bands. Gradients are
    central differences (one-sided at the border), as ``numpy.gradient`` computes them.
    """
    p, g = _as_255(pred), _as_255(gt)
    if p.shape != g.shape:
        raise ValueError(f"NE needs images of one shape; got {p.shape} and {g.shape}")
    gy, gx = np.gradient(g, axis=(0, 1))
    grad2 = (gx ** 2 + gy ** 2).sum(-1)
    return float(np.sqrt((((p - g) ** 2).sum(-1) / (grad2 + eps)).mean()))
