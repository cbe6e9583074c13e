"""KLT and DIS recover a known shift; the common Correspondences type."""
import numpy as np
import pytest

from mind_engine.evaluation.baselines import Correspondences, dis, grid, klt
from mind_engine.evaluation.metrics import evaluate


@pytest.fixture(scope="module")
def shifted():
    import cv2
    import skimage.data

    img = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)[64:192, 32:224]
    big = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    dx, dy = 3, -2  # image 3 = image 1 moved by (+3, -2)
    img3 = big[64 - dy:192 - dy, 32 - dx:224 - dx]
    return img, np.ascontiguousarray(img3), np.array([dx, dy], np.float32)


@pytest.mark.parametrize("method", [klt, dis])
def test_recovers_translation(shifted, method):
    img1, img3, d = shifted
    c = method(img1, img3, stride=8)
    assert isinstance(c, Correspondences) and len(c) > 0.9 * len(grid(img1.shape[:2], 8))
    best = c.top(len(c) // 2)
    err = np.linalg.norm(best.pts3 - best.pts1 - d, axis=1)
    assert np.median(err) < 0.3 and (err < 1).mean() > 0.9
    flow = np.broadcast_to(d, img1.shape[:2] + (2,)).astype(np.float32)
    res = evaluate([(flow, np.ones(img1.shape[:2], bool), {"m": c})], keep=0.5)
    assert res["m"]["Acc@5"] > 0.95


def test_same_grid_and_correspondence_type(shifted):
    img1, img3, _ = shifted
    k, d = klt(img1, img3, stride=16), dis(img1, img3, stride=16)
    g = grid(img1.shape[:2], 16)
    np.testing.assert_array_equal(d.pts1, g)
    assert set(map(tuple, k.pts1)) <= set(map(tuple, g))
    top = d.top(5)
    assert len(top) == 5 and np.all(np.diff(top.score) <= 0)
    with pytest.raises(ValueError):
        Correspondences(np.zeros((3, 2)), np.zeros((2, 2)), np.zeros(3), np.zeros((3, 2)))


def test_one_grey_conversion_for_the_refinement_and_the_baselines(shifted):
    """``refinement.lk.grey_u8`` takes any image the package accepts: the engine's float tensors (the
    refinement) and the caller's arrays (the baselines, the benches) give the same grey."""
    import cv2

    from mind_engine.images import to_tensor
    from mind_engine.refinement.lk import grey_u8

    img1 = shifted[0]
    want = cv2.cvtColor(img1, cv2.COLOR_RGB2GRAY)
    assert np.array_equal(grey_u8(img1), want) and np.array_equal(grey_u8(to_tensor(img1)), want)
    assert np.array_equal(grey_u8(img1.astype(np.float32) / 255), want)
