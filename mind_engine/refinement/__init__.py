"""Photometric refinement of MIND's matches, beside the engine (which stays the exact readout,
pinned to its oracle). The public face calls :func:`apply` once per pair, for every entry point.

``refine=``:

* ``"dis"`` (the default, ``mind_engine.defaults.REFINE``, the study's choice): OpenCV's DIS
  flow started from MIND's matches densified into its initial flow (``dis.py``, the dense
  alternative): each frame-3 end becomes ``p1 + F13(p1)`` within the move limit, checked by
  DIS's own backward flow.
* ``"lk"``: OpenCV's pyramidal Lucas-Kanade
  seeded with each match (``lk.py``): the frame-1 end fixed, the frame-3 end refined from MIND's
  (both ends with ``Settings.both``); an end LK loses or moves by more than the move limit
  stays raw and the match says it fell back. Then the forward-backward check (``check.py``).
* ``"peak"``: the quadratic sub-pixel peak of the sensitivity (``mind_engine.engine.refine``,
  computed by the engine from its rows and handed in as ``peak``), then the same check.
* ``"none"``: the network's readout exactly (the paper's); no check.

The result keeps the raw ends (``pts1_raw``, ``pts3_raw``) and says per match what happened
(``refinement``: ``RAW``, ``REFINED`` or ``FELL_BACK``; ``consistent``: passed the check, True
where none ran). Matches that failed the check rank last (``Matches.order``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..checks import REFINE_METHODS as METHODS
from ..defaults import CHECK_TOL, DIS_MOVE_LIMIT, LK_BOTH, LK_LEVELS, LK_MOVE_LIMIT, LK_WINDOW
from ..matches import FELL_BACK, RAW, REFINED, Matches
from . import dis
from .check import consistent
from .lk import grey_u8, refine_end

__all__ = ["METHODS", "RAW", "REFINED", "FELL_BACK", "Settings", "apply"]


@dataclass(frozen=True)
class Settings:
    """LK's window (px, square), pyramid levels above the image (0: the image alone), the move
    limit (px a refined end may move from MIND's; None: the method's, ``DIS_MOVE_LIMIT`` or
    ``LK_MOVE_LIMIT``), the check's tolerance (px) and whether LK refines the frame-1 end too
    (after the frame-3 end, from it). The defaults are the study's choice
    (``bench/refine_study.py``, ``mind_engine.defaults``)."""

    window: int = LK_WINDOW
    levels: int = LK_LEVELS
    move_limit: float | None = None
    tol: float = CHECK_TOL
    both: bool = LK_BOTH


def apply(img1, img3, raw: Matches, method: str, settings: Settings | None = None,
          peak: Matches | None = None) -> Matches:
    """``raw`` (MIND's readout on the (3, H, W) pair ``img1``, ``img3``) refined by ``method``
    (checked by the caller), with the raw ends and what happened to each match. ``peak``: the
    engine's quadratic-peak matches (``refine="peak"``, required there)."""
    n = len(raw)
    if method == "none" or n == 0:  # nothing to refine: OpenCV is not asked
        return replace(raw, pts1_raw=raw.pts1, pts3_raw=raw.pts3, refinement=np.full(n, RAW, np.int8),
                       consistent=np.ones(n, bool))
    s = settings or Settings()
    if s.move_limit is None:
        s = replace(s, move_limit=DIS_MOVE_LIMIT if method == "dis" else LK_MOVE_LIMIT)
    g1, g3 = grey_u8(img1), grey_u8(img3)
    p1, p3 = np.asarray(raw.pts1, np.float32), np.asarray(raw.pts3, np.float32)
    if method == "dis":
        q1, (q3, done, ok) = p1, dis.refine(g1, g3, raw.query, p1, p3, s.move_limit, s.tol)
    elif method == "peak":
        q1, q3, done = peak.pts1, peak.pts3, np.ones(n, bool)
        ok = consistent(g3, g1, q3, q1, s.window, s.levels, s.tol)
    else:
        q3, done = refine_end(g1, g3, p1, p3, s.window, s.levels, s.move_limit)
        q1 = p1
        if s.both:  # the frame-1 end from the refined frame-3 end; the check then goes forward
            q1, done1 = refine_end(g3, g1, q3, p1, s.window, s.levels, s.move_limit)
            done &= done1
            ok = consistent(g1, g3, q1, q3, s.window, s.levels, s.tol)
        else:
            ok = consistent(g3, g1, q3, q1, s.window, s.levels, s.tol)
    status = np.where(done, REFINED, FELL_BACK).astype(np.int8)
    base = peak if method == "peak" else raw
    return replace(base, pts1=np.asarray(q1, np.float32), pts3=np.asarray(q3, np.float32), pts1_raw=p1, pts3_raw=p3,
                   refinement=status, consistent=ok)
