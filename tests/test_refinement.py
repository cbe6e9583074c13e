"""The refinement stage (``mind_engine.refinement``, issue 38): OpenCV's LK seeded by MIND, its
fall-back and flags, the forward-backward check and the ranking that puts failed checks last,
``refine="none"`` bit for bit the readout, and the option through the CLI and batch manifests."""
import json

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine import cli, defaults, refinement
from mind_engine.evaluation.metrics import rank as metrics_rank
from mind_engine.interfaces import MindMatcher
from mind_engine.matches import FELL_BACK, RAW, REFINED, Matches

from conftest import SMALL

pytestmark = pytest.mark.usefixtures("one_thread")
SHIFT = np.array([1.3, -0.7])  # px, frame 1 -> frame 3
ONE_END = refinement.Settings(both=False)  # LK on the frame-3 end alone


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return me.MindNet(**SMALL).eval()


def texture(h=96, w=128, seed=0) -> np.ndarray:
    """A smooth random RGB texture, uint8 (structure at every scale LK's pyramid looks at)."""
    rng = np.random.default_rng(seed)
    out = sum(cv2.resize(rng.random((h // s, w // s, 3)), (w, h), interpolation=cv2.INTER_CUBIC) for s in (2, 4, 8))
    return (np.clip(out / 3, 0, 1) * 255).astype(np.uint8)


def shifted(img: np.ndarray, d) -> np.ndarray:
    """``img`` moved by ``d`` = (dx, dy) px (bilinear): frame-1 pixel p lies at p + d in the result."""
    m = np.float32([[1, 0, d[0]], [0, 1, d[1]]])
    return cv2.warpAffine(img, m, img.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def hand_matches(pts1, pts3, score=None) -> Matches:
    pts1, pts3 = np.asarray(pts1, np.float32), np.asarray(pts3, np.float32)
    s = np.arange(len(pts1), 0, -1, dtype=np.float32) if score is None else np.asarray(score, np.float32)
    return Matches(pts1, pts3, (pts1 + pts3) / 2, s, s, s)


def tensors(*imgs):
    return [torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1).float() / 255 for i in imgs]


def interior_grid(h, w, margin=24, stride=8) -> np.ndarray:
    ys, xs = np.mgrid[margin:h - margin:stride, margin:w - margin:stride]
    return np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)


def test_a_known_subpixel_shift_is_recovered_within_a_tenth_of_a_pixel():
    a = texture()
    b = shifted(a, SHIFT)
    p1 = interior_grid(*a.shape[:2])
    raw = hand_matches(p1, p1 + np.round(SHIFT) + np.array([2.0, -1.0]))  # MIND's ends: whole pixels off
    m = refinement.apply(*tensors(a, b), raw, "lk", ONE_END)
    err = np.linalg.norm(m.pts3 - (p1 + SHIFT), axis=1)
    assert (m.refinement == REFINED).all() and m.consistent.all()
    assert err.max() < 0.1, err.max()
    assert np.array_equal(m.pts1, p1) and np.array_equal(m.pts3_raw, raw.pts3) and np.array_equal(m.pts1_raw, p1)


def test_both_ends_are_refined_on_request():
    a = texture(seed=1)
    b = shifted(a, SHIFT)
    p1 = interior_grid(*a.shape[:2])
    raw = hand_matches(p1 + 0.4, p1 + np.round(SHIFT))
    m = refinement.apply(*tensors(a, b), raw, "lk", refinement.Settings(both=True))
    assert np.linalg.norm(m.pts3 - m.pts1 - SHIFT, axis=1).max() < 0.1
    assert not np.array_equal(m.pts1, raw.pts1) and m.consistent.all()


def test_a_refinement_that_diverges_falls_back_to_the_raw_end_and_says_so():
    a = texture()
    a[:, :48] = 128  # a blank band: LK has nothing to hold on to
    b = shifted(a, SHIFT)
    p1 = np.float32([[20, 48], [80, 48], [90, 60]])
    p3 = p1 + np.float32([[1, -1], [1, -1], [7, -1]])  # the last one 5.7 px off: beyond a 4 px move limit
    raw = hand_matches(p1, p3)
    m = refinement.apply(*tensors(a, b), raw, "lk", refinement.Settings(move_limit=4.0, both=False))
    assert m.refinement.tolist() == [FELL_BACK, REFINED, FELL_BACK]
    assert np.array_equal(m.pts3[[0, 2]], p3[[0, 2]])  # the raw ends, exactly
    assert np.linalg.norm(m.pts3[1] - (p1[1] + SHIFT)) < 0.1
    assert m.consistent.tolist() == [False, True, False]  # a wrong raw end does not come back to p1


def test_failed_checks_rank_last():
    a = texture()
    b = shifted(a, SHIFT)
    p1 = interior_grid(*a.shape[:2])[:6]
    p3 = p1 + np.round(SHIFT)
    p3[0] += 9  # the best-scored match is wrong by 9 px, beyond a 2 px move limit: it fails the check
    m = refinement.apply(*tensors(a, b), hand_matches(p1, p3, score=[9, 5, 4, 3, 2, 1]), "lk",
                         refinement.Settings(move_limit=2.0, both=False))
    assert m.consistent.tolist() == [False] + [True] * 5
    assert m.order().tolist() == [1, 2, 3, 4, 5, 0]
    assert np.array_equal(m.top(2).pts1, p1[[1, 2]]) and np.array_equal(m.top(6).pts1[-1], p1[0])
    assert metrics_rank(m.score, ~m.consistent).tolist() == m.order().tolist()  # the evaluation's ranking is the same


def test_refine_none_is_the_readout_bit_for_bit(tiny):
    a, b = texture(64, 96), texture(64, 96, seed=2)
    for levels in ("auto", 1, 2):
        e = me.Engine(a, b, model=tiny)
        if levels == 1:
            ref = e.textured(e._one_scale(e.queries(None, 8), 16, False))
        else:
            ref = e.coarse_to_fine(None, 8, 16, levels).matches
        m = me.match(a, b, stride=8, radius=16, levels=levels, model=tiny, refine="none")
        for f in ("pts1", "pts3", "query", "score", "score1", "score3", "texture"):
            assert np.array_equal(getattr(m, f), getattr(ref, f)), (levels, f)
        assert (m.refinement == RAW).all() and m.consistent.all() and np.array_equal(m.pts1_raw, m.pts1)
        assert np.array_equal(m.top(10).query, m[np.argsort(-m.score, kind="stable")[:10]].query)


def test_the_public_calls_refine_the_same_readout(tiny, tmp_path):
    a = texture(64, 96)
    b = shifted(a, SHIFT)
    none = me.match(a, b, stride=16, model=tiny, refine="none")
    # a photometric refinement starts from MIND stopped one level early (defaults.FINEST_LEVEL "auto")
    seed = me.match(a, b, stride=16, model=tiny, refine="none", finest_level=1)
    default = me.match(a, b, stride=16, model=tiny)
    assert np.array_equal(default.pts1_raw, seed.pts1) and np.array_equal(default.pts3_raw, seed.pts3)
    assert np.array_equal(default.score, seed.score) and set(np.unique(default.refinement)) <= {REFINED, FELL_BACK}
    assert not np.array_equal(default.pts3, seed.pts3)
    engine = me.Engine(a, b, model=tiny)
    assert np.array_equal(engine.match(stride=16, refine=defaults.REFINE.upper()).pts3, default.pts3)
    lk = engine.match(stride=16, refine="lk")
    assert np.array_equal(lk.pts1_raw, seed.pts1) and not np.array_equal(lk.pts3, default.pts3)
    peak = me.match(a, b, stride=16, model=tiny, refine="peak")
    assert np.array_equal(peak.pts3, me.match_subpixel(a, b, stride=16, model=tiny).pts3)
    assert np.abs(peak.pts3 - peak.pts3_raw).max() <= 0.5 * 2 ** 2  # half a pixel of the finest warped level
    fwd, flags = me.match_fb(a, b, stride=16, model=tiny, refine="none")
    assert np.array_equal(fwd.pts3, none.pts3) and flags.shape == (len(none),)
    matcher = MindMatcher(tiny, stride=16, refine="none")
    out = matcher({"image0": tensors(a)[0][None], "image1": tensors(b)[0][None]})
    assert np.array_equal(out["keypoints1"].numpy(), none.pts3)
    with pytest.raises(ValueError, match=r"unknown refine 'dense'; refine must be one of \['lk', 'dis', 'peak', 'none'\]"):
        me.match(a, b, model=tiny, refine="dense")


def test_engine_finest_level_is_where_match_stops_mind(tiny):
    """``Engine.finest_level`` resolves ``finest_level`` as ``match`` does, and ``match`` is the readout
    at that level through ``refined`` (how bench/accuracy.py and bench/few_queries.py split it)."""
    a = texture(64, 96)
    e = me.Engine(a, shifted(a, SHIFT), model=tiny)
    assert [e.finest_level(r) for r in ("dis", "LK", "peak", "none")] == [1, 1, 0, 0]
    assert e.finest_level("dis", levels=1) == 0 and e.finest_level("dis", finest_level=0) == 0
    with pytest.raises(ValueError, match="finest_level=1 needs a pyramid of 2 levels"):
        e.finest_level("none", 1, levels=1)
    for method in ("dis", "lk"):
        m = e.match(stride=16, refine=method)
        split = e.refined(e.match(stride=16, refine="none", finest_level=e.finest_level(method)), method)
        assert np.array_equal(m.pts3, split.pts3) and np.array_equal(m.score, split.score)


def test_the_cli_flag_and_the_json(tiny, tmp_path, capsys):
    path = me.save_model(tiny, tmp_path / "tiny.safetensors")
    a = texture(64, 96)
    iio.imwrite(tmp_path / "a.png", a)
    iio.imwrite(tmp_path / "b.png", shifted(a, SHIFT))
    common = [str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--weights", str(path), "--stride", "16"]
    for flag, want in (([], "dis"), (["--refine", "LK"], "lk"), (["--refine", "NONE"], "none"),
                       (["--subpixel"], "peak")):
        out = tmp_path / f"{want}.json"
        assert cli.main(["match", *common, *flag, "--json", str(out)]) == 0
        doc = json.loads(out.read_text())
        assert doc["refine"] == want and len(doc["matches"]) == 24
        r = doc["matches"][0]
        assert set(r) >= {"p1", "p3", "p1_raw", "p3_raw", "refinement", "consistent"}
        assert {m["refinement"] for m in doc["matches"]} <= ({"raw"} if want == "none" else {"refined", "fell back"})
        passed = [m["consistent"] for m in doc["matches"]]
        assert passed == sorted(passed, reverse=True)  # failed checks listed last
    capsys.readouterr()
    assert cli.main(["match", *common, "--refine", "dense"]) == 2
    assert "mind-engine match: error: argument --refine: invalid choice: 'dense'" in capsys.readouterr().err


def test_batch_manifests_record_the_refinement(tiny, tmp_path):
    a = texture(64, 64)
    pairs = [(a, shifted(a, SHIFT))]
    man = me.match_many(pairs, tmp_path / "lk", stride=16, model=tiny, progress=False)
    assert man["settings"]["refine"] == "dis"
    with pytest.raises(ValueError, match=r"other settings \(refine was 'dis', now 'none'\)"):
        me.match_many(pairs, tmp_path / "lk", stride=16, model=tiny, progress=False, refine="none")
    none = me.match_many(pairs, tmp_path / "none", stride=16, model=tiny, progress=False, refine="none")
    assert "refine" not in none["settings"]  # as folders before the option: their fingerprints hold
    from mind_engine.batch.store import read_result

    r = read_result(next((tmp_path / "lk").glob("*.npz")))
    assert {"pts1_raw", "pts3_raw", "refinement", "consistent"} <= set(r)


def test_dis_started_from_the_matches_recovers_a_known_shift():
    a = texture(seed=3)
    b = shifted(a, SHIFT)
    p1 = interior_grid(*a.shape[:2])
    raw = hand_matches(p1, p1 + np.round(SHIFT) + np.array([2.0, 1.0]))
    m = refinement.apply(*tensors(a, b), raw, "dis")
    err = np.linalg.norm(m.pts3 - (p1 + SHIFT), axis=1)
    assert (m.refinement == REFINED).all() and m.consistent.mean() > 0.9
    assert np.median(err) < 0.1 and err.max() < 0.5, (np.median(err), err.max())
    far = refinement.apply(*tensors(a, b), raw, "dis", refinement.Settings(move_limit=0.5))
    assert (far.refinement == FELL_BACK).all() and np.array_equal(far.pts3, raw.pts3)


def test_the_seed_field_is_the_pyramids_densification_on_a_grid():
    from mind_engine.engine.matching import grid_queries
    from mind_engine.engine.pyramid import grid_field
    from mind_engine.refinement.dis import seed_field

    hw = (32, 48)
    q = grid_queries(hw, 4).numpy().astype(np.float32)
    motion = np.random.default_rng(0).normal(size=(len(q), 2)).astype(np.float32)
    want = grid_field(torch.from_numpy(motion), torch.ones(len(q), dtype=torch.bool), hw, 4).numpy()
    np.testing.assert_allclose(seed_field(q, motion, hw), want, atol=1e-6)
