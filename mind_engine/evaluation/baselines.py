"""The methods compared in the accuracy benchmark, all returning :class:`Correspondences`.

Every method starts from the same grid: ``mind_engine.engine.matching.grid_queries(hw, stride)``.

* **KLT** (OpenCV pyramidal Lucas-Kanade): tracks each grid point of image 1 into image 3;
  ``p1`` = the grid point, ``p3`` = the tracked point, score = minus the tracking error OpenCV
  returns (mean absolute patch difference). Points whose status is 0 are dropped. As in the
  paper, ``minEigThreshold`` is 1e-9 so nearly every point is tracked.
* **DIS** (OpenCV dense inverse search flow): flow image 1 -> 3 and 3 -> 1; ``p1`` = the grid
  point, ``p3 = p1 + F13(p1)``; score = minus the forward-backward distance
  ``|F13(p1) + F31(p3)|`` (F31 sampled bilinearly; ``-inf`` when ``p3`` leaves the image).
* **MIND** (``mind_engine.match``, wrapped by :meth:`Correspondences.from_matches`): the grid is
  the query grid of the *middle* frame; each query q gives ``p1`` (peak of its sensitivity map
  in image 1) and ``p3`` (peak in image 3), score = the smaller peak-to-mean ratio. So MIND's
  ``p1`` is generally not a grid point; the pair ``(p1, p3)`` is what is judged (see
  :mod:`mind_engine.evaluation.metrics`), ``query`` keeps q.

The three are judged identically: ``|p3 - (p1 + flow_gt(p1))|``.
OpenCV (``opencv-python-headless``, a dev extra) is imported only by the KLT / DIS functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ..engine.matching import grid_queries
from ..refinement.dis import bilinear
from ..refinement.lk import grey_u8
from .metrics import rank


@dataclass
class Correspondences:
    """Matches img1 <-> img3 of any method, aligned with :class:`mind_engine.api.Matches`.

    ``pts1`` (N, 2) in image 1 and ``pts3`` (N, 2) in image 3, (x, y) float32 in the caller's
    frame; ``score`` (N,) the method's own confidence, higher is better; ``flag`` (N,) bool marks
    matches a consistency check rejected (ranked after all unflagged ones); ``query`` (N, 2) the
    middle-frame query for MIND, the grid point for the others.
    """

    pts1: np.ndarray
    pts3: np.ndarray
    score: np.ndarray
    query: np.ndarray
    flag: np.ndarray = field(default=None)
    method: str = ""

    def __post_init__(self):
        self.pts1 = np.asarray(self.pts1, np.float32).reshape(-1, 2)
        self.pts3 = np.asarray(self.pts3, np.float32).reshape(-1, 2)
        self.query = np.asarray(self.query, np.float32).reshape(-1, 2)
        self.score = np.asarray(self.score, np.float32).reshape(-1)
        self.flag = (np.zeros(len(self.score), bool) if self.flag is None
                     else np.asarray(self.flag, bool).reshape(-1))
        n = len(self.score)
        if not all(len(a) == n for a in (self.pts1, self.pts3, self.query, self.flag)):
            raise ValueError("pts1, pts3, query, score and flag must have the same length")

    def __len__(self) -> int:
        return len(self.score)

    def __getitem__(self, index) -> "Correspondences":
        arrays = {f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "method"}
        return Correspondences(**arrays, method=self.method)

    def order(self) -> np.ndarray:
        """Indices best first (unflagged first, then score; ties keep grid order)."""
        return rank(self.score, self.flag)

    def top(self, k: int) -> "Correspondences":
        """The ``k`` best matches, best first."""
        return self[self.order()[: max(int(k), 0)]]

    @classmethod
    def from_matches(cls, m, method: str = "MIND", flag=None) -> "Correspondences":
        """Wrap a :class:`mind_engine.api.Matches`."""
        return cls(m.pts1, m.pts3, m.score, m.query, flag, method)


def grid(hw, stride: int) -> np.ndarray:
    """The shared grid, (N, 2) float32 (x, y): the same points MIND queries."""
    return grid_queries(tuple(hw), stride).numpy().astype(np.float32)


def klt(img1, img3, stride: int = 4, points=None, win: int = 21, levels: int = 3,
        min_eig: float = 1e-9) -> Correspondences:
    """Pyramidal Lucas-Kanade from the grid points of image 1 into image 3."""
    import cv2

    g1, g3 = grey_u8(img1), grey_u8(img3)
    p0 = grid(g1.shape, stride) if points is None else np.asarray(points, np.float32).reshape(-1, 2)
    if len(p0) == 0:
        e = np.zeros((0, 2), np.float32)
        return Correspondences(e, e, np.zeros(0), e, method="KLT")
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
    p3, status, err = cv2.calcOpticalFlowPyrLK(g1, g3, p0.reshape(-1, 1, 2), None, winSize=(win, win),
                                               maxLevel=levels, criteria=criteria, minEigThreshold=min_eig)
    p3, status, err = p3.reshape(-1, 2), status.reshape(-1).astype(bool), err.reshape(-1)
    ok = status & np.isfinite(p3).all(1) & np.isfinite(err)
    return Correspondences(p0[ok], p3[ok], -err[ok], p0[ok], method="KLT")


def dis_flow(img1, img3, preset: int | None = None) -> np.ndarray:
    """Dense DIS flow image 1 -> image 3, (H, W, 2) float32 (dx, dy); preset default MEDIUM."""
    import cv2

    d = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM if preset is None else preset)
    return d.calc(grey_u8(img1), grey_u8(img3), None)


def dis(img1, img3, stride: int = 4, points=None, preset: int | None = None) -> Correspondences:
    """DIS optical flow sampled at the grid, ranked by forward-backward consistency."""
    f13, f31 = dis_flow(img1, img3, preset), dis_flow(img3, img1, preset)
    h, w = f13.shape[:2]
    p1 = grid((h, w), stride) if points is None else np.asarray(points, np.float32).reshape(-1, 2)
    p3 = p1 + bilinear(f13, p1)
    inside = (p3[:, 0] >= 0) & (p3[:, 0] <= w - 1) & (p3[:, 1] >= 0) & (p3[:, 1] <= h - 1)
    back = bilinear(f31, p3)
    fb = np.linalg.norm((p3 + back) - p1, axis=1)
    score = np.where(inside, -fb, -np.inf)
    return Correspondences(p1, p3, score, p1, method="DIS")
