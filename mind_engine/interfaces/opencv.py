"""``Matches`` as OpenCV wants them: float32 point arrays for ``cv2.findHomography`` /
``cv2.findFundamentalMat`` and ``cv2.KeyPoint`` / ``cv2.DMatch`` lists for ``cv2.drawMatches``.

OpenCV is imported only when the KeyPoint and DMatch lists are asked for (it is a dev extra).
"""
from __future__ import annotations

import numpy as np

from ..matches import Matches


def to_cv_points(m: Matches) -> tuple[np.ndarray, np.ndarray]:
    """(pts1, pts3): two contiguous (N, 2) float32 arrays, row i of each a correspondence, as
    ``cv2.findHomography(pts1, pts3, cv2.RANSAC, 3.0)`` and ``cv2.findFundamentalMat`` take them."""
    return (np.ascontiguousarray(m.pts1, dtype=np.float32).reshape(-1, 2),
            np.ascontiguousarray(m.pts3, dtype=np.float32).reshape(-1, 2))


def to_cv_keypoints(m: Matches, size: float = 8.0) -> tuple[list, list]:
    """(keypoints in img1, keypoints in img3): ``cv2.KeyPoint`` lists, one per match (index i of
    both is match i), ``size`` their diameter in pixels and ``response`` the match's score."""
    import cv2

    def kps(pts):
        return [cv2.KeyPoint(float(x), float(y), float(size), -1, float(s)) for (x, y), s in zip(pts, m.score)]

    return kps(m.pts1), kps(m.pts3)


def to_cv_matches(m: Matches) -> list:
    """``cv2.DMatch`` i -> i for each match, ``distance`` = 1 / score (OpenCV ranks smaller first;
    inf for a zero score), for ``cv2.drawMatches(img1, kps1, img3, kps3, to_cv_matches(m), None)``."""
    import cv2

    with np.errstate(divide="ignore"):
        dist = np.where(m.score > 0, 1.0 / np.maximum(m.score, 1e-30), np.inf)
    return [cv2.DMatch(i, i, float(d)) for i, d in enumerate(dist)]
