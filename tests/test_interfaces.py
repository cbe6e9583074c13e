"""The kornia-LoFTR-style matcher module and the OpenCV conversions of ``Matches``."""
import cv2
import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine.interfaces import MindMatcher, to_cv_keypoints, to_cv_matches, to_cv_points
from mind_engine.matches import Matches

from conftest import SMALL

pytestmark = pytest.mark.usefixtures("one_thread")


def _translated(n=60, shift=(7, -3), seed=0):
    """Matches whose img3 points are img1's moved by ``shift`` (a known homography)."""
    rng = np.random.default_rng(seed)
    p1 = rng.uniform(0, 200, (n, 2)).astype(np.float32)
    p3 = p1 + np.float32(shift)
    p3[:5] += rng.uniform(20, 40, (5, 2)).astype(np.float32)  # outliers for RANSAC to reject
    score = rng.uniform(1, 5, n).astype(np.float32)
    return Matches(pts1=p1, pts3=p3, query=(p1 + p3) / 2, score=score, score1=score, score3=score)


def test_points_feed_find_homography_and_recover_the_translation():
    m = _translated()
    p1, p3 = to_cv_points(m)
    assert p1.dtype == p3.dtype == np.float32 and p1.shape == p3.shape == (60, 2) and p1.flags.c_contiguous
    H, inliers = cv2.findHomography(p1, p3, cv2.RANSAC, 3.0)
    np.testing.assert_allclose(H / H[2, 2], [[1, 0, 7], [0, 1, -3], [0, 0, 1]], atol=1e-3)
    assert inliers[:5].sum() == 0 and inliers[5:].all()
    F, mask = cv2.findFundamentalMat(p1, p3, cv2.FM_RANSAC, 1.0)
    assert F.shape == (3, 3) and mask[5:].mean() > 0.9


def test_keypoints_and_dmatches_draw():
    m = _translated(n=10)
    k1, k3 = to_cv_keypoints(m, size=6)
    dm = to_cv_matches(m)
    assert len(k1) == len(k3) == len(dm) == 10
    assert k3[4].pt == pytest.approx(tuple(m.pts3[4])) and k1[0].size == 6 and k1[2].response == pytest.approx(m.score[2])
    assert [d.queryIdx for d in dm] == [d.trainIdx for d in dm] == list(range(10))
    best = int(np.argmax(m.score))
    assert min(dm, key=lambda d: d.distance).queryIdx == best
    img = np.zeros((240, 240, 3), np.uint8)
    drawn = cv2.drawMatches(img, k1, img, k3, dm, None)
    assert drawn.shape == (240, 480, 3) and drawn.any()
    empty = m[np.zeros(10, bool)]
    assert to_cv_points(empty)[0].shape == (0, 2) and to_cv_matches(empty) == []


def test_matcher_module_has_loftr_s_calling_convention(net):
    rng = np.random.default_rng(0)
    base = torch.from_numpy(rng.random((2, 1, 40, 56), dtype=np.float32))
    moved = torch.roll(base, 4, dims=3)
    matcher = MindMatcher(net, stride=12, radius=8)
    out = matcher({"image0": base, "image1": moved})
    assert set(out) == {"keypoints0", "keypoints1", "confidence", "batch_indexes"}
    n = len(out["confidence"])
    assert out["keypoints0"].shape == out["keypoints1"].shape == (n, 2) and out["keypoints0"].dtype == torch.float32
    assert out["batch_indexes"].dtype == torch.long and out["batch_indexes"].tolist() == [0] * (n // 2) + [1] * (n // 2)
    for b in range(2):
        m = me.match(base[b], moved[b], stride=12, radius=8, model=net)
        sel = out["batch_indexes"] == b
        np.testing.assert_array_equal(out["keypoints0"][sel].numpy(), m.pts1)
        np.testing.assert_array_equal(out["keypoints1"][sel].numpy(), m.pts3)
        np.testing.assert_array_equal(out["confidence"][sel].numpy(), m.score)
    top = MindMatcher(net, stride=12, radius=8, top=3)({"image0": base, "image1": moved})
    assert top["batch_indexes"].tolist() == [0, 0, 0, 1, 1, 1]
    assert isinstance(matcher, torch.nn.Module)  # holding its own copy of the model: the caller's is never changed
    assert all(torch.equal(p, q) and p is not q for p, q in zip(matcher.parameters(), net.parameters()))


def test_matcher_module_rejects_what_loftr_would():
    matcher = MindMatcher(me.MindNet(**SMALL))
    with pytest.raises(KeyError, match="'image1' is missing"):
        matcher({"image0": torch.zeros(1, 1, 32, 32)})
    with pytest.raises(ValueError, match="B x C x H x W"):
        matcher({"image0": torch.zeros(1, 32, 32), "image1": torch.zeros(1, 32, 32)})
