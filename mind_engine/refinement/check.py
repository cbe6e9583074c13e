"""The forward-backward check of a refined match: LK tracks the end refined last back into the
other image (from that image's end); a match whose return lands more than ``tol`` px from its
own end there, or that LK loses, fails the check. It costs one more LK pass, no network."""
from __future__ import annotations

import numpy as np

from .lk import track


def consistent(g_from: np.ndarray, g_to: np.ndarray, pts_from: np.ndarray, pts_to: np.ndarray, window: int,
               levels: int, tol: float) -> np.ndarray:
    """(N,) bool: the patches of ``g_from`` at ``pts_from``, tracked into ``g_to`` from ``pts_to``,
    land within ``tol`` px of ``pts_to``."""
    back, ok = track(g_from, g_to, pts_from, pts_to, window, levels)
    return ok & (np.linalg.norm(back - pts_to, axis=1) <= tol)
