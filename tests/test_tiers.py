"""Every engine tier against tier 0 (the paper's one-backward-per-query matcher), in fp32, on
random weights and random queries, image borders included, at several sizes and radii.

MIND_ENGINE_TEST_DEVICE=cuda runs them on a GPU (bench/device_run.sh; conftest.py turns TF32 off).

Tolerances: rows to 1e-5 of the largest entry (fp32 summation order differs between autograd
and the transposed network); match points equal unless the reference's sensitivity at both
points ties to 1e-6; peaks and scores to 1e-5 and 1e-4 relative.
"""
import os

import pytest
import torch

from mind_engine import Engine
from mind_engine.engine.linearisation import Linearisation
from mind_engine.engine.matching import search_boxes
from mind_engine.model import MindNet
from mind_engine.engine.oracle import Tier0
from mind_engine.engine.windows import score_inside
from mind_engine.engine.tiers import TIERS, make_tier

SMALL = dict(encoder=(5, 6, 7, 8, 9), decoder=(9, 8, 7, 6, 5))
FAST = [name for name in TIERS["torch"] if name != "t0"]
DEVICE = os.environ.get("MIND_ENGINE_TEST_DEVICE", "cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(hp, wp, seed, **config):
    g = torch.Generator().manual_seed(seed)
    model = MindNet(**(config or SMALL))
    model.reset_parameters(g)
    with torch.no_grad():  # random slopes and biases too, so that no layer is special
        for act in model.modules():
            if isinstance(act, torch.nn.PReLU):
                act.weight.uniform_(-0.5, 0.5, generator=g)
            elif isinstance(act, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                act.bias.uniform_(-0.1, 0.1, generator=g)
    i1, i3 = torch.rand(2, 1, 3, hp, wp, generator=g)
    return model.eval().to(DEVICE), i1.to(DEVICE), i3.to(DEVICE)


def _queries(h, w, n, seed):
    g = torch.Generator().manual_seed(seed)
    corners = torch.tensor([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1], [w // 2, 0], [0, h // 2]])
    rand = torch.stack([torch.randint(0, w, (n,), generator=g), torch.randint(0, h, (n,), generator=g)], 1)
    return torch.cat([corners, rand])


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_linearisation_reproduces_the_forward():
    model, i1, i3 = _setup(64, 96, 0)
    torch.testing.assert_close(Linearisation(model, i1, i3).out, model(i1, i3), rtol=0, atol=0)


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("hp,wp", [(32, 32), (64, 96), (96, 64)])
def test_rows_equal_tier0(name, hp, wp):
    model, i1, i3 = _setup(hp, wp, hp + wp)
    q = _queries(hp, wp, 5, 1)
    ref = Tier0(model, i1, i3).rows(q)
    got = make_tier(name, model, i1, i3, memory=1 << 20).rows(q)  # small budget: several chunks
    for r, g in zip(ref, got):
        assert g.shape == r.shape
        assert _rel(g, r) < 1e-5


def _assert_same_matches(ref, got, rows, hw):
    """idx equal, or a tie in the reference's sensitivity map; peaks and scores close."""
    h, w = hw
    for (ri, rp, rs), (gi, gp, gs), g in zip(ref, got, rows):
        s = g[:, :, :h, :w].abs().amax(1).flatten(1)
        differ = ri != gi
        if differ.any():
            a = s[differ].gather(1, ri[differ, None])
            b = s[differ].gather(1, gi[differ, None])
            torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
        torch.testing.assert_close(gp, rp, rtol=1e-5, atol=1e-12)
        torch.testing.assert_close(gs, rs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("hw,padded", [((32, 32), (32, 32)), ((60, 90), (64, 96)), ((90, 41), (96, 64))])
@pytest.mark.parametrize("radius", [None, 0, 3, 12, 17])
def test_matches_equal_tier0(name, hw, padded, radius):
    model, i1, i3 = _setup(*padded, sum(hw))
    q = _queries(*hw, 6, 2)
    boxes = search_boxes(q, radius, hw)
    t0 = Tier0(model, i1, i3)
    ref = t0.match(q, boxes, hw)
    got = make_tier(name, model, i1, i3, memory=1 << 20).match(q, boxes, hw)
    _assert_same_matches(ref, got, t0.rows(q), hw)


@pytest.mark.parametrize("name", [n for n in FAST if TIERS["torch"][n].windowed])
@pytest.mark.parametrize("channels_last", [True, False])
def test_both_crop_layouts_equal_tier0(name, channels_last, monkeypatch):
    """The windowed tiers keep their crops channels last on the CPU (oneDNN's faster layout) and
    NCHW elsewhere (``windowed.CHANNELS_LAST_DEVICES``); both are exact wherever they run."""
    from mind_engine.engine import windowed

    monkeypatch.setattr(windowed, "CHANNELS_LAST_DEVICES", (DEVICE,) if channels_last else ())
    hw = (60, 90)
    model, i1, i3 = _setup(64, 96, 5)
    q = _queries(*hw, 8, 4)
    t0 = Tier0(model, i1, i3)
    tier = make_tier(name, model, i1, i3, memory=1 << 20)
    assert tier.channels_last == channels_last
    for radius in (None, 4, 12):
        boxes = search_boxes(q, radius, hw)
        _assert_same_matches(t0.match(q, boxes, hw), tier.match(q, boxes, hw), t0.rows(q), hw)
    for r, g in zip(t0.rows(q), tier.rows(q)):
        assert _rel(g, r) < 1e-5


OTHER_TOPOLOGIES = {
    "depth 3, one skip": dict(encoder=(4, 6, 8), decoder=(8, 6, 4), skips=(2,)),
    "depth 4, no skip": dict(encoder=(5, 6, 7, 8), decoder=(8, 7, 6, 5), skips=()),
    "depth 5, skip 1 only": dict(encoder=(5, 6, 7, 8, 9), decoder=(9, 8, 7, 6, 5), skips=(1,)),
}


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("topology", list(OTHER_TOPOLOGIES))
def test_other_topologies_equal_tier0(name, topology):
    """The engine follows MindConfig: another depth or skip table needs no edit in the engine."""
    config = OTHER_TOPOLOGIES[topology]
    m = 2 ** len(config["encoder"])
    hw, padded = (3 * m - 3, 2 * m + 5), (3 * m, 3 * m)
    model, i1, i3 = _setup(*padded, 7, **config)
    q = _queries(*hw, 6, 3)
    t0 = Tier0(model, i1, i3)
    fast = make_tier(name, model, i1, i3, memory=1 << 20)
    for r, g in zip(t0.rows(q), fast.rows(q)):
        assert _rel(g, r) < 1e-5
    for radius in (None, 5):
        boxes = search_boxes(q, radius, hw)
        _assert_same_matches(t0.match(q, boxes, hw), fast.match(q, boxes, hw), t0.rows(q), hw)


def test_score_inside_picks_the_seeds_the_first_pass_cannot_score():
    """The windowed tiers' first pass computes rows on the box only; a peak whose 20 x 20 score
    window (clipped to the image) leaves the box needs the second pass."""
    hw, w = (40, 50), 50
    box = torch.tensor([[10, 10, 40, 30]] * 4 + [[0, 0, 50, 40]])
    p1 = [(25, 20), (20, 20), (30, 20), (31, 20), (0, 0)]  # score window [x-10, x+10) x [y-10, y+10)
    p3 = [(25, 20), (25, 20), (25, 21), (25, 20), (49, 39)]
    idx = torch.tensor([[y * w + x for x, y in p1], [y * w + x for x, y in p3]])
    assert score_inside(idx, box, hw).tolist() == [True, True, False, False, True]


@pytest.mark.parametrize("hw,padded", [((32, 32), (32, 32)), ((60, 90), (64, 96)), ((90, 41), (96, 64))])
def test_matches_at_radius_12_take_both_passes(hw, padded):
    """test_matches_equal_tier0 at radius 12 covers seeds scored by either pass."""
    model, i1, i3 = _setup(*padded, sum(hw))
    q = _queries(*hw, 6, 2)
    boxes = search_boxes(q, 12, hw)
    (idx1, _, _), (idx3, _, _) = Tier0(model, i1, i3).match(q, boxes, hw)
    inside = score_inside(torch.stack([idx1, idx3]), boxes, hw)
    assert 0 < int(inside.sum()) < len(q), inside


def test_unknown_tier_is_named():
    model, i1, i3 = _setup(32, 32, 0)
    with pytest.raises(ValueError, match="unknown tier 't9'"):
        Engine(i1[0], i3[0], model=model, tier="t9")


def test_the_registry_holds_each_backends_tiers_and_their_facts():
    from mind_engine.backends.onnx.runtime import OnnxRuntimeTier
    from mind_engine.checks import check_tier
    from mind_engine.engine.tiers import tier_class, tier_names

    assert tier_names() == ["t0", "t1", "t2", "t3"]
    assert tier_class("auto") is TIERS["torch"]["t3"] and tier_class("auto", "onnxruntime") is OnnxRuntimeTier
    assert [name for name, t in TIERS["torch"].items() if t.windowed] == ["t2", "t3"]
    assert check_tier("T1", "ONNXRuntime") == ("t1", "onnxruntime", "fp32")
    with pytest.raises(ValueError, match="backend='onnxruntime' runs tier t1 only; tier='t3' needs backend='torch'"):
        check_tier("t3", "onnxruntime")
    with pytest.raises(ValueError, match=r"precision='bf16' is for the windowed tiers \(t2, t3, auto\) on the torch"):
        check_tier("auto", "tensorrt", "bf16")
