"""A known homography, to test a model-fitting recipe on matches: a photo crop and the same
crop warped by a homography that moves its corners by a few pixels, and the corner error of an
estimated homography (the mean distance, over the image's four corners, between where it and the
true one send them: the usual measure of a homography's accuracy)."""
from __future__ import annotations

import cv2
import numpy as np

MARGIN = 20  # px of photo around the crop, so that the warp never pulls in the border


def warped_pair(photo: np.ndarray, x: int, y: int, w: int, h: int, corner_shift) -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    """(img1, img3, H): the w x h crop of ``photo`` at (x, y), the same crop of the photo warped by
    the homography that moves the crop's corners (top-left, top-right, bottom-right, bottom-left)
    by ``corner_shift`` (4, 2) px, and that homography in the crop's frame (img1 -> img3)."""
    big = photo[y - MARGIN:y + h + MARGIN, x - MARGIN:x + w + MARGIN]
    if big.shape[:2] != (h + 2 * MARGIN, w + 2 * MARGIN):
        raise ValueError(f"the crop at ({x}, {y}) of {w}x{h} needs {MARGIN} px of photo around it")
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    H = cv2.getPerspectiveTransform(corners, corners + np.float32(corner_shift))
    shift = np.array([[1, 0, MARGIN], [0, 1, MARGIN], [0, 0, 1]], np.float64)
    warped = cv2.warpPerspective(big, shift @ H @ np.linalg.inv(shift), (big.shape[1], big.shape[0]),
                                 flags=cv2.INTER_LINEAR)
    crop = lambda img: np.ascontiguousarray(img[MARGIN:MARGIN + h, MARGIN:MARGIN + w])  # noqa: E731
    return crop(big), crop(warped), H


def corner_error(estimate: np.ndarray | None, truth: np.ndarray, hw: tuple[int, int]) -> float:
    """Mean px distance between the (h, w) image's corners sent by ``estimate`` and by ``truth``
    (inf when no homography was found)."""
    if estimate is None:
        return float("inf")
    h, w = hw
    c = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]).reshape(-1, 1, 2)
    return float(np.linalg.norm(cv2.perspectiveTransform(c, estimate) - cv2.perspectiveTransform(c, truth), axis=2)
                 .mean())
