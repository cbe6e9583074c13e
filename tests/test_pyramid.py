"""Coarse-to-fine matching (mind_engine.engine.pyramid, densify): the warp and composition
arithmetic against a known motion field through a per-level matcher that returns the true
residual (no model involved), levels=1 unchanged, odd sizes, borders, bad levels; sub-pixel
refinement at the finest level through the real Engine with a tier that knows the motion
(``TrueRows``), and through the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mind_engine import Engine, match, match_fb, match_subpixel
from mind_engine.checks import check_levels
from mind_engine.cli import main
from mind_engine.engine import pyramid
from mind_engine.engine.levels import auto_levels, level_radii, max_levels
from mind_engine.engine.densify import densify, fill_holes, reject_outliers
from mind_engine.engine.matching import RowsTier, grid_queries, reduce_rows
from mind_engine.engine.pyramid import pixel_grid
from mind_engine.engine.refine import fb_flags
from mind_engine.engine.tiers import TIERS
from mind_engine.matches import Matches
from mind_engine.model import MindConfig, MindNet


def level_pixel(x: torch.Tensor, k: int) -> torch.Tensor:
    """Level-k pixel coordinates -> level-0 ones (each level halves, pixel centres aligned)."""
    return 2 ** k * x + (2 ** k - 1) / 2


class TrueResidual:
    """A level matcher that knows the motion: for query q of level k it returns the points of
    the warped pair that the true symmetric motion M maps q to (solving p = target -+ field(p)/2
    by fixed-point iteration), optionally rounded to whole pixels as MIND's argmax is, and limited
    to the level's search radius as a real search is. Records each level's residuals."""

    def __init__(self, motion, whole_pixels=False, search=True):
        self.motion, self.whole_pixels, self.search, self.residuals = motion, whole_pixels, search, {}

    def true_motion(self, q: torch.Tensor, k: int) -> torch.Tensor:
        return self.motion(level_pixel(q.double(), k)).float() / 2 ** k

    def __call__(self, level: pyramid.Level) -> Matches:
        q = level.queries.float()
        m = self.true_motion(level.queries, level.index)
        ends = []
        for sign in (-0.5, 0.5):
            target = q + sign * m
            p = target.clone()
            for _ in range(30):
                p = target - sign * pyramid.sample(level.field, p)
            ends.append(p)
        p1, p3 = ends
        self.residuals[level.index] = torch.maximum((p1 - q).abs().amax(1), (p3 - q).abs().amax(1))
        if self.search and level.radius is not None:
            p1 = q + (p1 - q).clamp(-level.radius, level.radius)
            p3 = q + (p3 - q).clamp(-level.radius, level.radius)
        if self.whole_pixels:
            p1, p3 = p1.round(), p3.round()
        ones = np.ones(len(q), np.float32)
        return Matches(pts1=p1.numpy(), pts3=p3.numpy(), query=q.numpy(), score=ones, score1=ones, score3=ones)


def affine_motion(x: torch.Tensor) -> torch.Tensor:
    """A smooth symmetric motion p3 - p1 (pixels of level 0): 20 px right, 9 px up, a 3 %
    zoom and a small rotation about the image centre (75, 50)."""
    c = x - torch.tensor([75.0, 50.0], dtype=x.dtype)
    a = torch.tensor([[0.03, -0.02], [0.02, 0.03]], dtype=x.dtype)
    return torch.tensor([20.0, -9.0], dtype=x.dtype) + c @ a.T


def run(matcher, hw=(100, 150), levels=3, radius=24, queries=None, grid_stride=None):
    img = torch.rand(3, *hw)
    q = grid_queries(hw, 4) if queries is None else queries
    return pyramid.coarse_to_fine(img, img.clone(), q, radius, levels, matcher, grid_stride=grid_stride)


def expected_points(q: torch.Tensor, hw):
    m = affine_motion(q.double()).float()
    lo, hi = torch.zeros(2), torch.tensor([hw[1] - 1.0, hw[0] - 1.0])
    return (q - m / 2).clamp(lo, hi), (q + m / 2).clamp(lo, hi)


def test_true_residual_composes_to_the_true_motion():
    matcher = TrueResidual(affine_motion, search=False)  # exact answers even where the field is extrapolated
    q = grid_queries((100, 150), 4)
    res = run(matcher, queries=q)
    e1, e3 = expected_points(q.float(), (100, 150))
    np.testing.assert_allclose(res.matches.pts1, e1.numpy(), atol=2e-3)
    np.testing.assert_allclose(res.matches.pts3, e3.numpy(), atol=2e-3)
    assert res.levels == 3 and res.radii == [6, 4, 4]  # 24 / 2**2 at the coarsest


def test_each_finer_level_only_sees_a_small_residual():
    """The field carried down is right: below the coarsest, interior residuals are far below
    RESIDUAL_RADIUS (a wrong sign, scale or half-pixel offset in the upsampling shows here)."""
    matcher = TrueResidual(affine_motion)
    run(matcher, queries=grid_queries((100, 150), 4))
    assert matcher.residuals[2].max() > 2  # the coarsest level sees the motion (each end half of 20 / 4 px)
    for k in (1, 0):
        assert matcher.residuals[k].median() < 0.25, (k, matcher.residuals[k].median())


def test_fields_follow_the_motion_at_every_level():
    res = run(TrueResidual(affine_motion), grid_stride=4)
    assert [f.shape[:2] for f in res.fields] == [(25, 38), (50, 75), (100, 150)]
    for k, f in zip((2, 1, 0), res.fields):
        h, w = f.shape[:2]
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")
        truth = affine_motion(level_pixel(torch.stack([xs, ys], -1).view(-1, 2), k)).view(h, w, 2) / 2 ** k
        inner = (slice(3, h - 3), slice(3, w - 3))  # the grid's edge cells are extrapolated, not interpolated
        err = np.abs(f[inner] - truth.numpy()[inner]).max()
        assert err < 0.05, (k, err)


def test_whole_pixel_matches_with_a_radius_still_recover_large_motion():
    """MIND-like answers (whole pixels, at most ``radius`` from the query): one level cannot
    reach 20 px with radius 4; three levels do, to within the rounding."""
    q = grid_queries((100, 150), 8)
    e1, e3 = expected_points(q.float(), (100, 150))
    one = pyramid.coarse_to_fine(torch.rand(3, 100, 150), torch.rand(3, 100, 150), q, 4, 1,
                                 TrueResidual(affine_motion, whole_pixels=True))
    three = run(TrueResidual(affine_motion, whole_pixels=True), radius=24, queries=q)
    err_one = np.linalg.norm(one.matches.pts3 - e3.numpy(), axis=1)
    err_three = np.linalg.norm(three.matches.pts3 - e3.numpy(), axis=1)
    assert np.median(err_one) > 5
    assert np.median(err_three) <= 0.75 and np.percentile(err_three, 95) <= 1.2


def test_wrong_matches_are_voted_out_of_the_field():
    """A fifth of each coarse level's matches points 6 px astray (symmetric, so only the median
    test can catch them): the finest residuals stay small."""
    class Corrupted(TrueResidual):
        def __call__(self, level):
            m = super().__call__(level)
            if level.index > 0:
                bad = np.random.default_rng(level.index).random(len(m)) < 0.2
                m.pts1[bad] -= 3.0
                m.pts3[bad] += 3.0
            return m

    matcher = Corrupted(affine_motion)
    run(matcher, queries=grid_queries((100, 150), 4))
    assert matcher.residuals[0].quantile(0.9) < 0.5


@pytest.mark.parametrize("hw", [(37, 61), (64, 96), (70, 33)])
def test_sizes_that_are_not_multiples_of_32_and_border_queries(hw):
    h, w = hw
    q = torch.tensor([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1], [w // 2, h // 2]])
    levels = max_levels(hw)
    res = run(TrueResidual(lambda x: torch.tensor([6.0, 3.0], dtype=x.dtype).expand_as(x)), hw=hw,
              levels=levels, radius=8, queries=q)
    p1, p3 = res.matches.pts1, res.matches.pts3
    assert np.isfinite(p1).all() and (p1 >= 0).all() and (p1[:, 0] <= w - 1).all() and (p1[:, 1] <= h - 1).all()
    assert (p3 >= 0).all() and (p3[:, 0] <= w - 1).all() and (p3[:, 1] <= h - 1).all()
    np.testing.assert_allclose(p3[-1] - p1[-1], [6.0, 3.0], atol=1e-3)  # the centre query


def test_densify_keeps_good_vectors_and_fills_holes():
    v = torch.zeros(6, 8, 2)
    v[..., 0] = 2.0
    kept = torch.ones(6, 8, dtype=torch.bool)
    v[2, 3] = torch.tensor([40.0, -40.0])  # an outlier
    kept[4, 6] = False  # a hole
    kept2 = reject_outliers(v, kept)
    assert not kept2[2, 3] and kept2.sum() == kept.sum() - 1
    filled = fill_holes(v, kept2)
    np.testing.assert_allclose(filled[2, 3].numpy(), [2.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(filled[4, 6].numpy(), [2.0, 0.0], atol=1e-5)
    dense = densify(v, kept, 2, 4, (24, 32))
    np.testing.assert_allclose(dense.numpy()[..., 0], 2.0, atol=1e-5)
    assert not densify(v, torch.zeros(6, 8, dtype=torch.bool), 2, 4, (24, 32)).any()  # nothing known: zero


def test_warp_and_sample_agree_with_a_known_shift():
    h, w = 20, 30
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    img = torch.stack([xs, ys, xs + ys])  # linear: bilinear resampling is exact inside
    field = torch.zeros(h, w, 2)
    field[..., 0], field[..., 1] = 4.0, -2.0
    warped = pyramid.warp(img, field, -0.5)  # resampled at q - m/2 = (x - 2, y + 1)
    np.testing.assert_allclose(warped[0, 5:15, 5:25].numpy(), xs[5:15, 5:25].numpy() - 2, atol=1e-4)
    np.testing.assert_allclose(warped[1, 5:15, 5:25].numpy(), ys[5:15, 5:25].numpy() + 1, atol=1e-4)
    up = pyramid.upsample_field(field, (40, 60))
    np.testing.assert_allclose(up.numpy(), np.broadcast_to([8.0, -4.0], (40, 60, 2)), atol=1e-5)


def test_auto_levels_and_radii():
    assert level_radii(4, 32) == [4, 4, 4, 4] and level_radii(3, 32) == [4, 4, 8]
    assert auto_levels((128, 384), 32) == 3  # not 4: auto keeps the coarsest side >= AUTO_MIN_SIDE (32)
    assert auto_levels((128, 384), 4) == 1 and auto_levels((128, 384), 8) == 2
    assert auto_levels((128, 384), None) == max_levels((128, 384), 32) == 3 and max_levels((128, 384)) == 4
    assert max_levels((20, 20)) == 1 and level_radii(3, None) == [4, 4, None]


# ----------------------------------------------------------------------------- through the engine


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(3)
    base = rng.random((80, 110, 3)).astype(np.float32)
    return base[:, :100], base[:, 4:104]  # a 4 px shift, 80 x 100


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return MindNet(MindConfig(encoder=(8, 8, 8, 8, 8), decoder=(8, 8, 8, 8, 8))).eval()


def test_levels_1_is_the_single_scale_matcher_bit_for_bit(pair, small_model):
    from mind_engine.engine.matching import search_boxes
    from mind_engine.matches import Matches

    fields = ("pts1", "pts3", "query", "score", "score1", "score3")
    e = Engine(*pair, model=small_model)
    q = grid_queries(e.hw, 8)
    for radius, levels in ((6, 1), (6, np.int64(1)), (4, "auto")):  # auto: 4 px needs no pyramid
        (i1, _, s1), (i3, _, s3) = e.tier.match(q, search_boxes(q, radius, e.hw), e.hw)  # the tier's peaks
        a = Matches.from_peaks(q, i1, s1, i3, s3, e.hw[1])
        b = match(*pair, stride=8, radius=radius, model=small_model, levels=levels, refine="none")
        assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


def test_coarse_to_fine_through_the_engine(pair, small_model):
    e = Engine(*pair, model=small_model)
    res = e.coarse_to_fine(stride=8, radius=16, levels=2)
    assert res.levels == 2 and res.radii == [8, 4]
    assert [f.shape for f in res.fields] == [(40, 50, 2), (80, 100, 2)]
    m = res.matches
    assert len(m) == len(grid_queries((80, 100), 8)) and np.isfinite(m.pts1).all() and np.isfinite(m.score).all()
    assert np.array_equal(e.match(stride=8, radius=16, levels=2, refine="none").pts1, m.pts1)  # deterministic


def test_every_level_of_the_pyramid_is_exact_against_tier0(pair):
    """Coarse to fine is exact level by level: each level's matches on the warped pair it sees,
    from the fast tier (t3, the default), are tier 0's (the paper's one backward per query):
    same points, scores to 1e-4. A random model with random slopes, so that no layer is special.
    The matcher here is the engine's own (checked: the same result as Engine.coarse_to_fine)."""
    g = torch.Generator().manual_seed(4)
    model = MindNet(MindConfig(encoder=(5, 6, 7, 8, 9), decoder=(9, 8, 7, 6, 5)))
    model.reset_parameters(g)
    with torch.no_grad():
        for act in model.modules():
            if isinstance(act, torch.nn.PReLU):
                act.weight.uniform_(-0.5, 0.5, generator=g)
    model.eval()
    seen = []

    def both(level: pyramid.Level) -> Matches:
        fast, slow = (Engine(level.img1, level.img3, model=model, tier=t).match(level.queries, radius=level.radius,
                                                                                 refine="none") for t in ("t3", "t0"))
        for f in ("pts1", "pts3"):
            np.testing.assert_array_equal(getattr(fast, f), getattr(slow, f))
        np.testing.assert_allclose(fast.score, slow.score, rtol=1e-4)
        seen.append((level.index, len(level.queries)))
        return fast

    e = Engine(*pair, model=model)
    res = pyramid.coarse_to_fine(e.t1, e.t3, e.queries(stride=16), 16, 3, both, grid_stride=16)
    assert [k for k, _ in seen] == [2, 1, 0] and all(n > 0 for _, n in seen)
    want = e.coarse_to_fine(stride=16, radius=16, levels=3).matches
    assert np.array_equal(res.matches.pts1, want.pts1) and np.array_equal(res.matches.score, want.score)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "deep", True, None, [2]])
def test_bad_levels_are_refused_naming_the_argument(bad, pair, small_model):
    with pytest.raises(ValueError, match="levels must be a positive integer or 'auto'"):
        match(*pair, model=small_model, levels=bad)


def test_too_many_levels_for_the_pair_are_refused(pair, small_model):
    with pytest.raises(ValueError, match=r"levels=9 is too deep for a 100x80 pair.*at most 3"):
        Engine(*pair, model=small_model).match(levels=9)
    assert check_levels("AUTO") == "auto" and check_levels(np.int32(3)) == 3


@pytest.fixture
def cli_files(tmp_path, pair, small_model):
    """The pair as PNG files and the small model as a weights file, for ``mind-engine match``."""
    from PIL import Image

    from mind_engine import save_model

    paths = []
    for i, im in enumerate(pair):
        p = tmp_path / f"{i}.png"
        Image.fromarray((im * 255).astype(np.uint8)).save(p)
        paths.append(str(p))
    return paths, str(save_model(small_model, tmp_path / "tiny.safetensors"))


def test_cli_levels(tmp_path, cli_files, capsys):
    paths, weights = cli_files
    assert main(["match", *paths, "--levels", "0"]) == 2
    assert "--levels must be a positive integer or 'auto', got 0" in capsys.readouterr().err
    out = tmp_path / "m.json"
    common = ["--stride", "16", "--radius", "8", "--weights", weights, "--json", str(out)]
    assert main(["match", *paths, "--levels", "2", *common]) == 0
    doc = json.loads(out.read_text())
    assert doc["levels"] == 2 and doc["n"] == len(grid_queries((80, 100), 16))
    assert main(["match", *paths, "--levels", "2", "--fb", *common]) == 0
    doc = json.loads(out.read_text())
    assert doc["levels"] == 2 and doc["fb"] and all("fb_consistent" in r for r in doc["matches"])


def test_batch_settings_keep_old_fingerprints_and_record_levels(tmp_path, pair, small_model):
    from mind_engine import match_many
    from mind_engine.batch.spec import Settings

    assert "levels" not in Settings.make(levels=1).to_dict()  # folders written before levels existed still resume
    assert Settings.make(levels="Auto").to_dict()["levels"] == "auto"
    with pytest.raises(ValueError, match="levels must be a positive integer or 'auto'"):
        match_many([pair], tmp_path / "bad", levels=0, model=small_model)
    assert not (tmp_path / "bad").exists()  # refused before any work
    man = match_many([pair], tmp_path / "out", stride=16, radius=8, levels=2, model=small_model, progress=False)
    assert man["settings"]["levels"] == 2 and man["counts"]["ok"] == 1
    res = np.load(next((tmp_path / "out").glob("*.npz")))
    direct = match(*pair, stride=16, radius=8, levels=2, model=small_model)
    np.testing.assert_array_equal(res["pts1"], direct.pts1)


def test_mind_matcher_levels(pair, small_model):
    from mind_engine.interfaces.loftr import MindMatcher

    with pytest.raises(ValueError, match="levels must be"):
        MindMatcher(small_model, levels=-2)
    im0, im1 = (torch.from_numpy(p).permute(2, 0, 1)[None] for p in pair)
    out = MindMatcher(small_model, stride=16, radius=8, levels=2)({"image0": im0, "image1": im1})
    direct = match(*pair, stride=16, radius=8, levels=2, model=small_model)
    np.testing.assert_allclose(out["keypoints0"].numpy(), direct.pts1)


def test_match_fb_matches_the_swapped_pair_coarse_to_fine_too(pair, small_model):
    fwd, flags = match_fb(*pair, stride=16, radius=8, model=small_model, levels=2)
    back = match(pair[1], pair[0], queries=fwd.query, radius=8, model=small_model, levels=2)
    d1 = np.linalg.norm(fwd.pts1 - back.pts3, axis=1)
    d3 = np.linalg.norm(fwd.pts3 - back.pts1, axis=1)
    assert np.array_equal(flags, (d1 > 1.0) | (d3 > 1.0))


# ----------------------------------------------------------------------------- sub-pixel through the pyramid

COORD_HW = (64, 128)  # halves exactly twice: area averaging keeps the coordinate images exact at every level


def coordinate_image(hw=COORD_HW) -> torch.Tensor:
    """(3, h, w) in [0, 1]: channel 0 is x / (w - 1), channel 1 is y / (h - 1), channel 2 zero."""
    h, w = hw
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([xs / (w - 1), ys / (h - 1), torch.zeros(h, w)])


class TrueRows(RowsTier):
    """A rows tier that knows the motion (``affine_motion``), for a pair of ``coordinate_image``s:
    each pixel of the (warped) pair it is given says which level-0 point it samples, so for query
    q of level k it finds the point p of each warped image that samples q's true end (level 0:
    ``level_pixel(q, k) -+ M / 2``) and makes every row of q the paraboloid ``C - |x - p|^2``,
    whose integer argmax is the pixel nearest p and whose quadratic fit is p itself."""

    name, speed = "truth", -1  # never "auto"

    def __init__(self, model, i1, i3, memory=None, precision="fp32"):
        scale = torch.tensor([COORD_HW[1] - 1.0, COORD_HW[0] - 1.0])
        self.coords = [i[0, :2].permute(1, 2, 0) * scale for i in (i1, i3)]  # (Hp, Wp, 2) level-0 points

    def match_rows(self, queries, boxes, hw):
        h, w = hw
        k = round(np.log2(COORD_HW[1] / w))
        q = level_pixel(queries.double(), k)
        m = affine_motion(q)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")
        rows = []
        for coords, target in zip(self.coords, (q - m / 2, q + m / 2)):
            p = queries.double()
            for _ in range(40):  # solve coords(p) = target; coords(p) is about 2**k p, so this contracts
                p = p + (target - pyramid.sample(coords[:h, :w].double(), p)) / 2 ** k
            d2 = (xs - p[:, 0, None, None]) ** 2 + (ys - p[:, 1, None, None]) ** 2
            s = (d2.flatten(1).amax(1)[:, None, None] + 1 - d2).float()
            rows.append(s[:, None].expand(-1, 3, -1, -1))
        return rows

    def match(self, queries, boxes, hw):
        return tuple(reduce_rows(g, boxes, hw) for g in self.match_rows(queries, boxes, hw))


@pytest.fixture
def true_rows(monkeypatch):
    monkeypatch.setitem(TIERS["torch"], TrueRows.name, TrueRows)
    return TrueRows.name


def interior_queries(margin=16, step=8):
    h, w = COORD_HW
    q = grid_queries(COORD_HW, step)
    inside = (q[:, 0] >= margin) & (q[:, 0] < w - margin) & (q[:, 1] >= margin) & (q[:, 1] < h - margin)
    return q[inside]


def test_subpixel_pyramid_refines_on_the_warped_pair_and_maps_back_to_the_truth(true_rows, small_model):
    """The rows the finest level reads are those of its warped pair; refined there and mapped back
    through the warps, the points are the true ones, where the integer peaks are up to ~0.7 px off."""
    img = coordinate_image()
    q = interior_queries()
    e1, e3 = expected_points(q.float(), COORD_HW)
    engine = Engine(img, img, model=small_model, tier=true_rows)
    whole, refined = engine.refine(queries=q, radius=24, levels=3, both=True)
    err_sub = np.abs(np.concatenate([refined.pts1 - e1.numpy(), refined.pts3 - e3.numpy()]))
    err_int = np.abs(np.concatenate([whole.pts1 - e1.numpy(), whole.pts3 - e3.numpy()]))
    assert err_sub.max() < 0.01, err_sub.max()
    assert np.median(err_int) > 0.1 and err_int.max() < 0.75  # the rounding on the warped pair, mapped back
    m = engine.match(queries=q, radius=24, levels=3, refine="none")
    assert all(np.array_equal(getattr(whole, f), getattr(m, f)) for f in ("pts1", "pts3", "query", "score"))
    np.testing.assert_array_equal(refined.score, m.score)  # refinement moves points, never scores
    res = engine.coarse_to_fine(stride=8, radius=24, levels=3, subpixel=True)  # a grid: the finest field too
    truth = affine_motion(pixel_grid(COORD_HW).double()).view(*COORD_HW, 2).numpy()
    assert np.median(np.abs(res.fields[-1] - truth)[16:-16, 16:-16]) < 0.01  # from the refined points (whole: ~0.5)
    assert np.array_equal(match_subpixel(img, img, queries=q, radius=24, levels=3, model=small_model,
                                         tier=true_rows).pts1, refined.pts1)


def test_subpixel_at_one_level_is_the_single_scale_refinement_bit_for_bit(pair, small_model):
    fields = ("pts1", "pts3", "query", "score", "score1", "score3")
    a = match_subpixel(*pair, stride=8, radius=4, model=small_model)
    for levels in (np.int64(1), "auto"):  # auto: 4 px needs no pyramid
        b = match_subpixel(*pair, stride=8, radius=4, model=small_model, levels=levels)
        assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


def test_subpixel_pyramid_through_the_engine(pair, small_model):
    whole, refined = match_subpixel(*pair, stride=16, radius=8, model=small_model, levels=2, both=True)
    moved = np.abs(refined.pts1 - whole.pts1).max()
    assert 0 < moved < 0.75  # half a pixel on the warped pair, a little more through the warps
    _, flags = match_fb(*pair, radius=8, model=small_model, levels=2, subpixel=True, forward=refined)
    back = match_subpixel(pair[1], pair[0], queries=refined.query, radius=8, model=small_model, levels=2)
    assert np.array_equal(flags, fb_flags(refined, back))


def test_cli_subpixel_and_fb_through_the_pyramid(tmp_path, cli_files, small_model):
    """``mind-engine match --levels 3 --subpixel --fb`` gives ``match_fb(levels=3, subpixel=True)``."""
    from PIL import Image

    paths, weights = cli_files
    out = tmp_path / "m.json"
    assert main(["match", *paths, "--levels", "3", "--subpixel", "--fb", "--stride", "16", "--radius", "8",
                 "--weights", weights, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["levels"] == 3 and doc["subpixel"] and doc["fb"] and doc["n"] == len(grid_queries((80, 100), 16))
    fwd, flags = match_fb(*(np.asarray(Image.open(p)) for p in paths), stride=16, radius=8, model=small_model,
                          levels=3, subpixel=True)
    got = {tuple(r["query"]): r for r in doc["matches"]}
    rows = [got[tuple(q)] for q in fwd.query.tolist()]
    np.testing.assert_allclose([r["p1"] for r in rows], fwd.pts1, atol=1e-6)
    np.testing.assert_allclose([r["p3"] for r in rows], fwd.pts3, atol=1e-6)
    assert [r["fb_consistent"] for r in rows] == list(~flags)
    assert (fwd.pts1 != np.round(fwd.pts1)).any()  # refined, not whole pixels


# ----------------------------------------------------------------------------- queries: only what they need


class Counting:
    """A level matcher that records how many queries each level was given, around another."""

    def __init__(self, inner):
        self.inner, self.seen = inner, {}

    def __call__(self, level):
        self.seen[level.index] = len(level.queries)
        return self.inner(level)


def some_grid_queries(hw, n, seed=0, stride=4):
    """``n`` queries of the stride-4 grid (their dense run's matches are the grid run's), sorted."""
    grid = grid_queries(hw, stride)
    return grid, np.sort(np.random.default_rng(seed).choice(len(grid), n, replace=False))


def test_needed_cells_is_a_rectangle_around_each_query_and_saturates():
    from mind_engine.engine.pruning import CONTEXT_CELLS, needed_cells, needed_grids

    hw = (50, 75)  # a level of 100 x 150: a 12 x 19 grid of 4 px cells
    one = needed_cells(torch.tensor([[75.0, 50.0]]), 14, hw)
    ys, xs = torch.nonzero(one, as_tuple=True)
    assert one.shape == (12, 19) and one.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)  # one box
    # the window 75 +- 14 px of the finer level is coarse x 30.25 .. 44.25: pixels 30 .. 45, cells 7 .. 11, + grow
    assert (xs.min(), xs.max()) == (7 - 1 - CONTEXT_CELLS, 11 + 1 + CONTEXT_CELLS)
    assert needed_cells(grid_queries((100, 150), 4).float(), 14, hw).all()
    hws = [(256, 384), (128, 192), (64, 96)]
    masks = needed_grids(torch.tensor([[75, 50]]), hws, [18, 18, 18])
    assert needed_grids(torch.tensor([[75, 50]]), hws, [0, 18, 18])[1].sum() < masks[1].sum()  # finest_level=1
    assert masks[0] is None and masks[1].equal(needed_cells(torch.tensor([[75.0, 50.0]]), 18, hws[1]))
    assert 0 < masks[1].sum() < masks[1].numel() and 0 < masks[2].sum() < masks[2].numel()


def test_a_few_queries_match_only_around_them_and_equal_the_dense_run():
    """True residuals (every score equal, no outliers): the coarse levels match a fraction of their
    grids, and the matches at the queries are the dense run's bit for bit."""
    hw = (192, 320)
    grid, pick = some_grid_queries(hw, 3)
    full = Counting(TrueResidual(affine_motion, whole_pixels=True))
    dense = run(full, hw=hw, queries=grid, grid_stride=4)
    few = Counting(TrueResidual(affine_motion, whole_pixels=True))
    pruned = run(few, hw=hw, queries=grid[pick])
    for f in ("pts1", "pts3", "query", "score"):
        np.testing.assert_array_equal(getattr(pruned.matches, f), getattr(dense.matches, f)[pick])
    assert few.seen[0] == 3 and few.seen[1] < full.seen[1] / 2 and few.seen[2] <= full.seen[2], (few.seen, full.seen)
    early = Counting(TrueResidual(affine_motion, whole_pixels=True))  # finest_level=1: level 1 read, not matched at
    pyramid.coarse_to_fine(torch.rand(3, *hw), torch.rand(3, *hw), grid[pick], 24, 3, early, finest_level=1)
    assert 0 not in early.seen and early.seen[1] < few.seen[1], early.seen


def test_queries_that_need_every_cell_are_the_dense_run_bit_for_bit(pair, small_model):
    """A random network: queries whose windows cover every coarse cell (here the whole grid) run
    exactly the dense computation."""
    e = Engine(*pair, model=small_model)
    grid = grid_queries(e.hw, 8)
    a, b = e.match(stride=8, radius=16, levels=2), e.match(queries=grid, radius=16, levels=2)
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("pts1", "pts3", "query", "score"))


def noise_pair(hw=(128, 256), shift=6):
    base = np.random.default_rng(3).random((hw[0], hw[1] + shift, 3)).astype(np.float32)
    return base[:, :hw[1]], base[:, shift:hw[1] + shift]


def test_the_neighbourhood_rule_is_complete_for_a_random_network(small_model, monkeypatch):
    """What the pruned run reads is all the dense run's answer at the queries depends on, but for
    the threshold of the best half by score (``KEEP_SCORE``, over the matched cells only): with it
    out of the way (every consistent match kept) a random network's pruned run gives the dense run's
    points at the queries, at a fraction of the coarse levels' queries; the scores differ in the
    fifth digit (the finer levels' forward reads the whole warped pair, which differs far away)."""
    monkeypatch.setattr(pyramid, "KEEP_SCORE", 1.0)
    e = Engine(*noise_pair(), model=small_model)
    grid, pick = some_grid_queries(e.hw, 2, seed=5)
    dense = e.coarse_to_fine(stride=4, radius=24, levels=3).matches
    counting = Counting(None)
    real = pyramid.coarse_to_fine

    def counted(*args, **kwargs):  # the engine's own level matcher, counted
        counting.inner = args[5]
        return real(*args[:5], counting, **kwargs)

    monkeypatch.setattr("mind_engine.api.coarse_to_fine", counted)
    few = e.coarse_to_fine(queries=grid[pick], radius=24, levels=3).matches
    for f in ("pts1", "pts3", "query"):
        np.testing.assert_array_equal(getattr(few, f), getattr(dense, f)[pick])
    np.testing.assert_allclose(few.score, dense.score[pick], rtol=1e-3)
    assert counting.seen[1] < 0.75 * len(grid_queries((64, 128), 4)), counting.seen


def test_a_few_queries_through_the_engine_find_the_true_motion_as_the_dense_run(true_rows, small_model):
    """The true-motion tier through the real Engine: a few queries, pruned, land where the dense
    run's matches do (its scores vary, so the best half by score is not the same set: the fields
    differ slightly; the refined points, which the rounding does not hide, agree to 0.01 px)."""
    img = coordinate_image()
    engine = Engine(img, img, model=small_model, tier=true_rows)
    q = interior_queries()[::7]
    grid = grid_queries(COORD_HW, 8)
    pick = np.flatnonzero((grid[:, None] == q[None]).all(-1).any(1).numpy())
    dense = engine.refine(stride=8, radius=24, levels=3)[pick]
    few = engine.refine(queries=q, radius=24, levels=3)
    np.testing.assert_array_equal(few.query, dense.query)
    assert np.abs(few.pts1 - dense.pts1).max() < 0.01 and np.abs(few.pts3 - dense.pts3).max() < 0.01


# ----------------------------------------------------------------------------- finest_level=1: MIND stops one level early


def test_finest_level_1_reads_the_queries_from_level_1s_field():
    """MIND (here the true residual) runs at levels 2 and 1 only; each query's ends are q -+ m(q)/2
    with m level 1's field, bilinear: an affine motion comes back exactly inside the image."""
    hw = (100, 150)
    q = interior_grid_queries(hw)
    counting = Counting(TrueResidual(affine_motion, search=False))
    res = pyramid.coarse_to_fine(torch.rand(3, *hw), torch.rand(3, *hw), q, 24, 3, counting, finest_level=1)
    assert sorted(counting.seen) == [1, 2] and len(res.fields) == 2 and res.fields[-1].shape[:2] == (50, 75)
    e1, e3 = expected_points(q.float(), hw)
    np.testing.assert_allclose(res.matches.pts1, e1.numpy(), atol=2e-3)
    np.testing.assert_allclose(res.matches.pts3, e3.numpy(), atol=2e-3)
    assert res.matches.pts1.dtype == np.float32 and (res.matches.pts1 != np.round(res.matches.pts1)).any()


def interior_grid_queries(hw, margin=16, step=4):
    q = grid_queries(hw, step)
    inside = (q[:, 0] >= margin) & (q[:, 0] < hw[1] - margin) & (q[:, 1] >= margin) & (q[:, 1] < hw[0] - margin)
    return q[inside]


def test_finest_level_1_scores_are_the_nearest_level_1_matchs():
    class Scored(TrueResidual):
        def __call__(self, level):
            m = super().__call__(level)
            s = (level.queries[:, 0] + 1000 * level.queries[:, 1]).float().numpy()  # says which query it was
            return Matches(m.pts1, m.pts3, m.query, s, s + 1, s + 2)

    hw = (100, 150)
    q = torch.tensor([[0, 0], [9, 9], [10, 10], [77, 41], [149, 99]])
    res = pyramid.coarse_to_fine(torch.rand(3, *hw), torch.rand(3, *hw), q, 24, 3, Scored(affine_motion),
                                 finest_level=1)
    # level 1 is 75 x 50, its grid cells at 2, 6, ..., 74 (x) and 2, ..., 46 (y); a query at level 1 is
    # (q - 0.5) / 2: x 0, 9, 10, 77, 149 -> -0.25, 4.25, 4.75, 38.25, 74.25 -> cells 2, 6, 6, 38, 74
    nearest = [(2, 2), (6, 6), (6, 6), (38, 22), (74, 46)]
    np.testing.assert_array_equal(res.matches.score, [x + 1000 * y for x, y in nearest])
    np.testing.assert_array_equal(res.matches.score1, res.matches.score + 1)
    np.testing.assert_array_equal(res.matches.query, q.float().numpy())


def test_finest_level_1_through_the_engine(true_rows, small_model, pair):
    """The true-motion tier: level 1's whole-pixel peaks, doubled and interpolated, land within a
    pixel of the truth; the options are checked."""
    img = coordinate_image()
    engine = Engine(img, img, model=small_model, tier=true_rows)
    q = interior_queries()
    e1, e3 = expected_points(q.float(), COORD_HW)
    m = engine.match(queries=q, radius=24, levels=3, finest_level=1, refine="none")
    err = np.abs(np.concatenate([m.pts1 - e1.numpy(), m.pts3 - e3.numpy()]))
    assert err.max() < 1.0 and m.texture is not None, err.max()
    a = match(*pair, stride=8, radius=16, levels=2, model=small_model, finest_level=np.int64(1), refine="none")
    b = Engine(*pair, model=small_model).coarse_to_fine(stride=8, radius=16, levels=2, finest_level=1)
    assert np.array_equal(a.pts1, b.matches.pts1) and len(b.fields) == 1 and len(a) == len(grid_queries((80, 100), 8))
    with pytest.raises(ValueError, match="finest_level must be 'auto' or one of 0, 1, got 2"):
        match(*pair, model=small_model, finest_level=2)
    with pytest.raises(ValueError, match=r"finest_level=1 needs a pyramid of 2 levels or more; levels is 1"):
        match(*pair, model=small_model, radius=4, finest_level=1)  # auto: 4 px needs no pyramid
    with pytest.raises(ValueError, match="subpixel refines the finest MIND level's peaks"):
        Engine(*pair, model=small_model).coarse_to_fine(levels=2, subpixel=True, finest_level=1)


def test_the_default_call_at_a_few_queries_prunes_the_coarse_levels(small_model, pair, monkeypatch):
    """The caller's queries prune the coarse levels in the default call too (MIND stopped at level
    1 before "dis"), as in the readout run to level 0; a grid never prunes. bench/few_queries.py
    measured what pruning costs at one query: nothing beyond the noise of 800 draws
    (bench/results/few_queries_cpu.json, few_queries_n1_seed1_cpu.json)."""
    pruned = []
    real = pyramid.needed_grids
    monkeypatch.setattr(pyramid, "needed_grids", lambda *a: pruned.append(a) or real(*a))
    engine = Engine(*pair, model=small_model)
    q = grid_queries((80, 100), 4).numpy()[[3, 100, 257, 400]]
    engine.match(radius=16, levels=2)
    assert not pruned
    few = engine.match(q, radius=16, levels=2)
    assert len(few) == 4 and len(pruned) == 1
    engine.match(q, radius=16, levels=2, refine="none")
    assert len(pruned) == 2
