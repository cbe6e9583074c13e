"""Average Point Error, Accuracy@T and the fairness protocol (mind_engine.evaluation.metrics)."""
import numpy as np
import pytest

from mind_engine.evaluation.baselines import Correspondences
from mind_engine.evaluation.metrics import evaluate, kept_errors, point_errors, rank, sample_flow, summarize


def _field(h=10, w=12):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs * 0.5, ys * -0.25], -1), np.ones((h, w), bool)


def test_sample_flow_is_bilinear_and_respects_the_mask():
    flow, valid = _field()
    gt, ok = sample_flow(flow, valid, np.array([[2, 3], [2.5, 3.5], [11, 9], [11.5, 0], [-0.1, 0]]))
    assert ok.tolist() == [True, True, True, False, False]
    np.testing.assert_allclose(gt[:3], [[1, -0.75], [1.25, -0.875], [5.5, -2.25]])
    valid[4, 3] = False
    _, ok = sample_flow(flow, valid, np.array([[3, 3], [3.5, 3.5], [3, 4], [2, 4]]))
    # an integer point needs only its own pixel; a fractional one every pixel it weighs
    assert ok.tolist() == [True, False, False, True]


def test_point_errors_and_summary():
    flow, valid = _field()
    p1 = np.array([[2, 2], [4, 4], [6, 6]], np.float32)
    gt = p1 + np.array([[1, -0.5], [2, -1], [3, -1.5]])
    p3 = gt + np.array([[3, 4], [0, 0], [0, 12]])  # errors 5, 0, 12
    err, ok = point_errors(p1, p3, flow, valid)
    np.testing.assert_allclose(err, [5, 0, 12], atol=1e-6)
    s = summarize(err)
    assert s["APE"] == pytest.approx(17 / 3) and s["Acc@5"] == pytest.approx(1 / 3)
    assert s["Acc@10"] == pytest.approx(2 / 3) and s["Acc@20"] == 1 and s["n"] == 3


def test_rank_puts_flagged_and_nan_last_and_keeps_grid_order_on_ties():
    order = rank(np.array([1.0, 3.0, np.nan, 3.0, 2.0]), np.array([0, 0, 0, 0, 1], bool))
    assert order.tolist() == [1, 3, 0, 2, 4]


def test_fairness_same_k_each_ranked_by_its_own_confidence():
    flow = np.zeros((20, 20, 2), np.float32)
    valid = np.ones((20, 20), bool)
    valid[:, 15:] = False
    p1 = np.stack([np.arange(10) + 2, np.full(10, 5)], 1).astype(np.float32)
    # method a: errors 0..9, confidence agrees with error; b: same errors, confidence reversed,
    # and two matches start where there is no ground truth (not counted, not charged)
    err = np.arange(10, dtype=np.float32)
    a = Correspondences(p1, p1 + np.c_[err, 0 * err], -err, p1)
    p1b = p1.copy()
    p1b[:2, 0] = 16
    b = Correspondences(p1b, p1b + np.c_[err, 0 * err], err, p1b)
    kept, k = kept_errors({"a": a, "b": b}, flow, valid, keep=0.5)
    assert k == 4  # half of min(10, 8)
    np.testing.assert_allclose(kept["a"], [0, 1, 2, 3])
    np.testing.assert_allclose(kept["b"], [9, 8, 7, 6])
    res = evaluate([(flow, valid, {"a": a, "b": b})] * 2, keep=0.5)
    assert res["a"]["n"] == res["b"]["n"] == 8 and res["a"]["K_per_pair"] == [4, 4]
    assert res["a"]["APE"] == pytest.approx(1.5) and res["b"]["APE"] == pytest.approx(7.5)
    with pytest.raises(ValueError):
        kept_errors({"a": a}, flow, valid, keep=0)


def test_empty_sets_and_mismatched_methods():
    flow, valid = _field()
    s = summarize([])
    assert s["n"] == 0 and np.isnan(s["APE"]) and np.isnan(s["Acc@5"])
    p = np.array([[2, 2]], np.float32)
    a = Correspondences(p, p, np.ones(1), p)
    with pytest.raises(ValueError, match="different methods"):
        evaluate([(flow, valid, {"a": a}), (flow, valid, {"b": a})])
