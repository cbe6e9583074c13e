"""Sub-pixel refinement (quadratic fit around the peak of S) and the forward-backward flag."""
import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine.matches import Matches
from mind_engine.api import match_fb, match_subpixel
from mind_engine.engine.refine import fb_flags, peak_patches, quadratic_offsets, subpixel_offsets
from mind_engine.engine.tiers import TIERS

from conftest import SMALL



pytestmark = pytest.mark.usefixtures("one_thread")


def _quadratic_patch(x0, y0, a=-1.0, b=-2.0, c=0.3):
    ys, xs = np.mgrid[-1:2, -1:2].astype(float)
    return 10 + a * (xs - x0) ** 2 + b * (ys - y0) ** 2 + c * (xs - x0) * (ys - y0)


def test_quadratic_fit_recovers_the_vertex_exactly():
    patches = np.stack([_quadratic_patch(0.3, -0.2), _quadratic_patch(-0.45, 0.1, -3, -1, 0.0)])
    np.testing.assert_allclose(quadratic_offsets(patches), [[0.3, -0.2], [-0.45, 0.1]], atol=1e-5)


def test_border_and_non_peaks_fall_back_per_axis():
    p = _quadratic_patch(0.25, 0.2, c=0.0)
    p[:, 0] = np.nan  # left column outside the image: x stays, y is fitted by its parabola
    flat = np.full((3, 3), 5.0)  # no maximum: no move
    off = quadratic_offsets(np.stack([p, flat]))
    np.testing.assert_allclose(off, [[0.0, 0.2], [0.0, 0.0]], atol=1e-6)
    steep = np.array([[0, 0, 0], [0, 1, 5], [0, 0, 0]], float)  # not a true peak: clipped to 0.5
    assert abs(quadratic_offsets(steep[None])[0, 0]) <= 0.5


def test_peak_patches_gather_s_with_nan_outside():
    s = torch.arange(20.0).view(1, 4, 5)
    p = peak_patches(s, torch.tensor([0]))[0]
    assert np.isnan(p[0]).all() and np.isnan(p[:, 0]).all()
    np.testing.assert_array_equal(p[1:, 1:], [[0, 1], [5, 6]])
    # a search box [x0, y0, x1, y1) = [2, 1, 4, 3) hides the column x = 1 and the row y = 0
    p = peak_patches(s, torch.tensor([7]), torch.tensor([[2, 1, 4, 3]]))[0]
    assert np.isnan(p[0]).all() and np.isnan(p[:, 0]).all()
    np.testing.assert_array_equal(p[1:, 1:], [[7, 8], [12, 13]])


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(3)
    net = me.MindNet(**SMALL).eval()
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    b = np.roll(a, 2, axis=1)
    return net, a, b


def test_match_subpixel_refines_match_exactly(setup):
    net, a, b = setup
    m = me.match(a, b, stride=16, model=net, tier="t0", refine="none")
    mi, ms = match_subpixel(a, b, stride=16, model=net, tier="t0", both=True)
    np.testing.assert_array_equal(mi.pts1, m.pts1)
    np.testing.assert_array_equal(mi.pts3, m.pts3)
    np.testing.assert_allclose(ms.score, m.score, rtol=1e-6)
    assert np.abs(ms.pts1 - m.pts1).max() <= 0.5 and np.abs(ms.pts3 - m.pts3).max() <= 0.5
    assert np.abs(ms.pts1 - m.pts1).max() > 0  # something moved
    # the offsets are the quadratic fit of S = max_c |row| around each integer peak
    g1, _ = me.jacobian_rows(net, a, b, m.query, tier="t0")
    idx = torch.from_numpy(m.pts1[:, 1] * 48 + m.pts1[:, 0]).long()
    np.testing.assert_allclose(ms.pts1 - m.pts1, subpixel_offsets(g1, idx), atol=1e-5)


@pytest.mark.parametrize("tier", ["auto", *TIERS["torch"]])
def test_every_tier_refines_as_tier0(setup, tier):
    net, a, b = setup
    m = me.match(a, b, stride=16, radius=6, model=net, tier=tier, refine="none")
    mi, ms = match_subpixel(a, b, stride=16, radius=6, model=net, tier=tier, both=True)
    np.testing.assert_array_equal(mi.pts1, m.pts1)
    np.testing.assert_array_equal(mi.pts3, m.pts3)
    np.testing.assert_allclose(ms.score, m.score, rtol=1e-5)
    ref = match_subpixel(a, b, stride=16, radius=6, model=net, tier="t0")
    np.testing.assert_allclose(ms.pts1, ref.pts1, atol=1e-4)
    np.testing.assert_allclose(ms.pts3, ref.pts3, atol=1e-4)


def test_refined_points_stay_in_the_search_box(setup):
    net, a, b = setup
    ms = match_subpixel(a, b, stride=16, radius=1, model=net, tier="t0")
    assert (np.abs(ms.pts1 - ms.query) <= 1).all() and (np.abs(ms.pts3 - ms.query) <= 1).all()


def test_fb_flags():
    q = np.zeros((3, 2), np.float32)
    z = np.zeros(3, np.float32)
    f = Matches(np.array([[1, 1], [5, 5], [9, 9]], np.float32), np.array([[2, 2], [6, 6], [9, 9]], np.float32), q, z, z, z)
    b = Matches(np.array([[2, 2], [6, 8], [9, 9]], np.float32), np.array([[1.5, 1.5], [5, 5], [7, 9]], np.float32), q, z, z, z)
    assert fb_flags(f, b).tolist() == [False, True, True]
    with pytest.raises(ValueError):
        fb_flags(f, Matches(*(x[:2] for x in (b.pts1, b.pts3)), q[:2] + 1, z[:2], z[:2], z[:2]))


def test_match_fb_runs_the_swapped_pair_at_the_same_queries(setup):
    net, a, b = setup
    fwd, flags = match_fb(a, b, stride=16, model=net, tier="t0")
    back = me.match(b, a, model=net, tier="t0", queries=fwd.query)
    expect = (np.linalg.norm(fwd.pts1 - back.pts3, axis=1) > 1) | (np.linalg.norm(fwd.pts3 - back.pts1, axis=1) > 1)
    assert flags.dtype == bool and flags.tolist() == expect.tolist()
