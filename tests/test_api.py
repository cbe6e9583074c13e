"""The public API on tier 0: grids, queries, padding, coordinates, and clear errors on bad input."""
import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine.ops._torch_impl import match_reduce
from mind_engine.images import ImageError
from mind_engine.engine.oracle import Tier0



def test_match_grid_in_caller_frame_equals_the_definition(net, pair):
    m = me.match(*pair, stride=8, model=net, tier="t0", refine="none")  # the readout, unrefined
    assert len(m) == 5 * 6 and m.pts1.shape == (30, 2) and m.pts1.dtype == np.float32
    assert m.query[:, 0].min() == 4 and m.query[:, 0].max() == 44 and m.query[:, 1].max() == 36
    # by hand: pad to 64x64, tier-0 rows, crop to 40x50, reduce
    t = [torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255 for a in pair]
    padded = [torch.nn.functional.pad(x, (0, 14, 0, 24), mode="replicate") for x in t]
    g1, g3 = Tier0(net, *padded).rows(torch.from_numpy(m.query).long())
    idx, _, s1 = match_reduce(g1[:, :, :40, :50])
    np.testing.assert_array_equal(m.pts1[:, 0], (idx % 50).numpy())
    np.testing.assert_array_equal(m.pts1[:, 1], (idx // 50).numpy())
    np.testing.assert_allclose(m.score1, s1.numpy(), rtol=1e-5)
    idx3, _, s3 = match_reduce(g3[:, :, :40, :50])
    np.testing.assert_array_equal(m.pts3[:, 0], (idx3 % 50).numpy())
    np.testing.assert_allclose(m.score, np.minimum(m.score1, m.score3))
    assert (m.pts1[:, 0] < 50).all() and (m.pts1[:, 1] < 40).all()


def test_queries_radius_and_top(net, pair):
    q = np.array([[0, 0], [49.4, 39.2], [20, 10]])
    m = me.match(*pair, queries=q, radius=3, model=net, tier="t0", refine="none")
    np.testing.assert_array_equal(m.query, [[0, 0], [49, 39], [20, 10]])
    assert (np.abs(m.pts1 - m.query) <= 3).all() and (np.abs(m.pts3 - m.query) <= 3).all()
    top = m.top(2)
    assert len(top) == 2 and top.score[0] >= top.score[1] and top.score[0] == m.score.max()
    assert len(m.top(10)) == 3 and len(m.top(0)) == 0


def test_jacobian_rows_shape_and_torch_input(net, pair):
    a, b = (torch.from_numpy(x).permute(2, 0, 1).float() / 255 for x in pair)
    g1, g3 = me.jacobian_rows(net, a, b, [[3, 4], [10, 20]])
    assert g1.shape == g3.shape == (2, 3, 40, 50)
    assert g1[0].abs().amax() > 0


def test_engine_serves_match_rows_and_refine_from_one_linearisation(net, pair):
    engine = me.Engine(*pair, model=net, tier="t3")
    m = engine.match(stride=8, radius=6)
    ref = me.match(*pair, stride=8, radius=6, model=net, tier="t3")
    np.testing.assert_array_equal(m.pts1, ref.pts1)
    np.testing.assert_array_equal(m.pts3, ref.pts3)
    tier = engine.tier
    whole, refined = engine.refine(stride=8, radius=6, both=True)
    np.testing.assert_array_equal(whole.pts1, m.pts1)
    assert np.abs(refined.pts1 - m.pts1).max() <= 0.5
    g1, _ = engine.rows([[3, 4]])
    torch.testing.assert_close(g1, me.jacobian_rows(net, *pair, [[3, 4]])[0], rtol=1e-5, atol=1e-7)
    assert engine.tier is tier  # the pair was linearised once


def test_long_runs_say_their_plan_and_a_time_estimate(net, pair, monkeypatch, capsys):
    from mind_engine import api

    monkeypatch.setattr(api, "CHUNK_BYTES", 6 * 4 * 64 * 64 * 5)  # 5 queries a chunk on the padded 64x64
    plain = me.match(*pair, model=net, stride=10)
    m = me.Engine(*pair, model=net).match(stride=10, progress=True)
    err = capsys.readouterr().err
    assert "mind_engine: matching 20 queries of a 50x40 pair in 4 chunk(s)" in err
    assert "the first chunk took" in err and "all 4 should take about" in err
    assert np.array_equal(m.pts1, plain.pts1) and np.array_equal(m.score, plain.score)


def test_a_pyramid_s_plan_line_counts_what_its_progress_lines_show(net, pair, monkeypatch, capsys):
    """The plan's chunk count is the finest level's, which its bar counts (it once gave the finest
    level's count as the whole run's, then showed every level's chunks: "14 chunk(s)", 16 lines)."""
    import re

    from mind_engine import api

    monkeypatch.setattr(api, "CHUNK_BYTES", 6 * 4 * 64 * 64 * 5)  # 5 queries a chunk on the padded 64x64
    me.Engine(*pair, model=net).match(stride=10, levels=2, radius=8, progress=True, refine="none")  # to level 0
    err = capsys.readouterr().err.splitlines()
    (plan,) = [line for line in err if line.startswith("mind_engine: matching")]
    assert "level 1 in chunks of their own, then level 0 in 4 chunk(s)" in plan, plan
    finest = [line for line in err if line.startswith("matching level 0")]
    assert re.match(r"matching level 0 \(auto\): 4/4 chunk", finest[-1]), err
    assert any(line.startswith("matching level 1 (auto): ") for line in err)


def test_grayscale_rgba_uint16_and_float_inputs_are_converted(net, pair):
    base = me.match(*pair, stride=10, model=net).pts1
    gray = [a.mean(2).astype(np.uint8) for a in pair]
    assert len(me.match(*gray, stride=10, model=net)) == len(base)
    rgba = [np.dstack([a, np.full(a.shape[:2], 255, np.uint8)]) for a in pair]
    np.testing.assert_array_equal(me.match(*rgba, stride=10, model=net).pts1, base)
    as16 = [a.astype(np.uint16) * 257 for a in pair]
    np.testing.assert_array_equal(me.match(*as16, stride=10, model=net).pts1, base)
    asf = [a.astype(np.float64) / 255 for a in pair]
    np.testing.assert_array_equal(me.match(*asf, stride=10, model=net).pts1, base)


@pytest.mark.parametrize("bad, message", [
    (lambda a: a[:30], "differ in size"),
    (lambda a: a.transpose(2, 0, 1), "channels first"),
    (lambda a: a[..., :2], "HxWx4 array"),
    (lambda a: a[:0], "empty"),
    (lambda a: a[:8, :8], "at least 16"),
    (lambda a: np.where(a > 128, np.nan, a / 255.0), "NaN or inf"),
    (lambda a: a.astype(np.float32), r"0-255 floats\? divide by 255"),
    (lambda a: a.astype(np.int32), "unsupported dtype int32"),
    (lambda a: a.tolist(), "numpy array, a torch tensor or a path"),
    (lambda a: torch.zeros(1, 3, 40, 50), "a batch"),
])
def test_bad_inputs_name_the_problem(net, pair, bad, message):
    with pytest.raises((ImageError, ValueError), match=message):
        me.match(pair[0], bad(pair[1]), model=net)


def test_paths_are_read_and_bad_paths_rejected(net, pair, tmp_path):
    import imageio.v3 as iio

    p1, p3 = tmp_path / "a.png", tmp_path / "b.png"
    iio.imwrite(p1, pair[0])
    iio.imwrite(p3, pair[1])
    np.testing.assert_array_equal(me.match(p1, str(p3), stride=10, model=net).pts1,
                                  me.match(*pair, stride=10, model=net).pts1)
    (tmp_path / "c.png").write_text("not an image")
    with pytest.raises(ImageError, match="not an image file"):
        me.match(tmp_path / "c.png", p3, model=net)
    with pytest.raises(ImageError, match="no such file"):
        me.match(tmp_path / "none.png", p3, model=net)


def test_bad_queries_stride_radius(net, pair):
    with pytest.raises(ValueError, match="outside the 50x40"):
        me.match(*pair, queries=[[50, 0]], model=net)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        me.match(*pair, queries=[1, 2, 3], model=net)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        me.match(*pair, stride=0, model=net)
    with pytest.raises(ValueError, match="radius must be None or a non-negative integer"):
        me.match(*pair, radius=-1, model=net)
    with pytest.raises(ValueError, match="unknown tier"):
        me.match(*pair, tier="t9", model=net)
    with pytest.raises(ValueError, match="precision must be one of"):  # at construction, before any image work
        me.Engine(*pair, model=net, precision="fp8")
    with pytest.raises(ValueError, match="precision='bf16' is for the windowed tiers"):
        me.Engine(*pair, model=net, tier="t1", precision="bf16")
    with pytest.raises(ValueError, match="stride must be a positive integer, got nan"):
        me.match(*pair, stride=float("nan"), model=net)


def test_unknown_backend_and_tier_backend_mismatch_are_named():
    a = np.zeros((32, 32, 3), np.uint8)
    net = me.MindNet(encoder=(4, 4, 4, 4, 4), decoder=(4, 4, 4, 4, 4))
    with pytest.raises(ValueError, match="unknown backend 'tvm'"):
        me.match(a, a, model=net, backend="tvm")
    with pytest.raises(ValueError, match="tier='t2' needs backend='torch'"):
        me.match(a, a, model=net, backend="onnxruntime", tier="t2")


def test_matching_leaves_the_callers_random_generator_alone(net, pair):
    """The memory estimate builds a network of the model's configuration: it must not draw from
    torch's global generator (a user's seeded experiment would shift). A width no other test uses,
    so the estimate's cache is cold."""
    from mind_engine.engine.budget import _tile_map_sizes
    from mind_engine.model import MindNet

    model = MindNet(encoder=(3, 5, 6, 7, 9), decoder=(9, 7, 6, 5, 3)).eval()
    _tile_map_sizes.cache_clear()
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    me.match(*pair, stride=16, radius=8, levels=1, model=model)
    assert torch.equal(torch.rand(4), expected)
