"""The README's homography recipe (``cv2.findHomography`` on ``m.textured().best_per_cell(16)``)
on a photo crop under a known homography, with ``match``'s defaults but stride 8 (for speed) and
the bundled model. Measured: corner error 1.19 px for the recipe (1.33 px on every textured
match, 4.45 px on the 100 best textured matches, which cluster in one region); at stride 4 on
384x128 crops, ``bench/homography.py`` (``bench/results/homography_cpu.json``)."""
import cv2
import numpy as np
import pytest

import mind_engine as me
from mind_engine.data.sources import still_image
from mind_engine.evaluation.homography import corner_error, warped_pair
from mind_engine.interfaces.opencv import to_cv_points

pytestmark = pytest.mark.usefixtures("one_thread")
SHIFT = [[3, -2], [-2, 3], [2, 2], [-3, -1]]  # the crop's corners moved by 2-3 px


def test_warped_pair_moves_the_corners_by_the_shift():
    img1, img3, H = warped_pair(still_image("coffee"), 170, 120, 192, 128, SHIFT)
    corners = np.float32([[0, 0], [192, 0], [192, 128], [0, 128]]).reshape(-1, 1, 2)
    np.testing.assert_allclose(cv2.perspectiveTransform(corners, H).reshape(-1, 2) - corners.reshape(-1, 2), SHIFT,
                               atol=1e-4)
    assert img1.shape == img3.shape == (128, 192, 3) and not np.array_equal(img1, img3)
    assert corner_error(H, H, (128, 192)) == 0 and corner_error(None, H, (128, 192)) == float("inf")
    with pytest.raises(ValueError, match="needs 20 px"):
        warped_pair(still_image("coffee"), 0, 0, 192, 128, SHIFT)


def test_the_readme_homography_recipe_is_within_2_px():
    img1, img3, H = warped_pair(still_image("coffee"), 170, 120, 192, 128, SHIFT)
    m = me.match(img1, img3, stride=8)
    best = m.textured().best_per_cell(16)
    est, inliers = cv2.findHomography(*to_cv_points(best), cv2.RANSAC, 3.0)
    assert corner_error(est, H, img1.shape[:2]) <= 2.0
    assert inliers.sum() >= 0.8 * len(best) and len(best) >= 60
