"""Layered synthetic video: exact middle frame, ground truth, occlusion, split; matching accuracy
and checkpoint choice by it."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mind_engine.evaluation.pairs import EvalPair, layered_pairs
from mind_engine.data.layered import LayeredMotion
from mind_engine.data.scene import Layer, Scene
from mind_engine.data.sources import Clip
from mind_engine.data.synthetic import SYNTHETIC_TRAIN_IMAGES, SYNTHETIC_VAL_IMAGES
from mind_engine.training.validation import BEST_NAME, match_accuracy, validation_pairs
from mind_engine.data.video import split_index

pytestmark = pytest.mark.usefixtures("one_thread")


def ramp(h: int, w: int, level: float = 0.5) -> np.ndarray:
    """A texture linear in x and y (bilinear sampling of it is exact) with a constant third channel."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.dstack([xs / (w - 1), ys / (h - 1), np.full_like(xs, level)]).astype(np.float32)


class RampLayers(LayeredMotion):
    """Random layered scenes whose textures are ramps, each layer with its own third channel."""

    def texture(self, rng, w, h):
        return ramp(h, w, float(rng.uniform(0.05, 0.95))), ("ramp",)


def bilinear(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(H, W, C) sampled at (..., 2) float points, exactly bilinear (float64 math in torch)."""
    h, w = img.shape[:2]
    g = np.stack([pts[..., 0] * 2 / (w - 1) - 1, pts[..., 1] * 2 / (h - 1) - 1], -1)
    t = torch.from_numpy(img.astype(np.float64)).permute(2, 0, 1)[None]
    out = F.grid_sample(t, torch.from_numpy(g[None]), align_corners=True, padding_mode="border")
    return out[0].permute(1, 2, 0).numpy()


def test_deterministic_by_seed():
    lm = LayeredMotion((96, 64), max_motion=16)
    (a, info_a), (b, info_b) = (lm.sample(torch.Generator().manual_seed(7), augment=True) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert np.array_equal(info_a["flow"], info_b["flow"]) and np.array_equal(info_a["visible"], info_b["visible"])
    c, _ = lm.sample(torch.Generator().manual_seed(8), augment=True)
    assert not torch.equal(a[0], c[0])


def test_middle_frame_is_the_half_way_translation():
    """A translating layer: frame 2 is frame 1 shifted by exactly half the motion."""
    tex = np.random.default_rng(0).random((101, 151, 3)).astype(np.float32)
    scene = Scene([Layer(tex, None, (40.0, 30.0), shift=(8.0, -6.0))], (64, 48))
    f1, f2, f3 = (scene.render(t) for t in (0.0, 0.5, 1.0))
    np.testing.assert_allclose(f2[:-3, 4:], f1[3:, :-4], atol=1e-4)  # f2(x) = f1(x - d/2), d/2 = (4, -3)
    np.testing.assert_allclose(f3[:-6, 8:], f1[6:, :-8], atol=1e-4)
    assert np.abs(f2 - f1).max() > 0.1


def test_middle_frame_is_the_half_way_similarity():
    """Rotating, zooming, translating layer: frame 2 shows each texture point where the motion
    path puts it at t = 1/2 (half the spin, the geometric mean of the scales)."""
    h, w = 161, 201
    layer = Layer(ramp(h, w), None, (33.0, 21.0), shift=(10.0, 4.0), angle=0.3, spin=0.2, scale=1.2, zoom=0.1)
    f2 = Scene([layer], (64, 48)).render(0.5)
    ys, xs = np.mgrid[0:48, 0:64].astype(np.float64)
    a, s = 0.3 + 0.1, 1.2 * math.exp(0.05)
    px, py = xs - 33 - 5, ys - 21 - 2
    vx = (math.cos(a) * px + math.sin(a) * py) / s  # R(-a) (p - c - d/2) / s: the texture offset
    vy = (-math.sin(a) * px + math.cos(a) * py) / s
    np.testing.assert_allclose(f2[..., 0], (vx + (w - 1) / 2) / (w - 1), atol=1e-5)
    np.testing.assert_allclose(f2[..., 1], (vy + (h - 1) / 2) / (h - 1), atol=1e-5)


def test_correspondences_are_exact_on_random_scenes():
    """Jitter off: frame 3 at p + flow(p) shows what frame 1 shows at p, for visible pixels away
    from layer edges; occluded pixels do not."""
    lm = RampLayers((128, 96), max_motion=32, jitter=False)
    g = torch.Generator().manual_seed(3)
    checked, occluded_differ = 0, []
    for _ in range(4):
        (i1, _, i3), info = lm.sample(g, augment=True)
        f1, f3 = (t.permute(1, 2, 0).numpy() for t in (i1, i3))
        flow, vis = info["flow"], info["visible"]
        h, w = vis.shape
        grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).astype(np.float64)
        at3 = bilinear(f3, grid + flow)
        k5, own = np.ones((5, 5), np.uint8), info["layer"].astype(np.uint8)
        # away from blended layer edges: visible, one layer, in a 5x5 neighbourhood inside the frame
        interior = cv2.erode(vis.astype(np.uint8), k5, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
        interior &= cv2.erode(own, k5) == cv2.dilate(own, k5)
        err = np.abs(at3 - f1).max(-1)
        assert err[interior].max() < 1e-3
        checked += interior.sum()
        p3 = grid + flow
        inside = (p3[..., 0] >= 0) & (p3[..., 0] <= w - 1) & (p3[..., 1] >= 0) & (p3[..., 1] <= h - 1)
        hidden = cv2.erode((~vis & inside).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        occluded_differ += list(err[hidden] > 1e-2)
    assert checked > 15000 and len(occluded_differ) > 100 and np.mean(occluded_differ) > 0.9


def test_occlusion_of_a_moving_square():
    """An opaque square moving 20 px right over a still background hides the background strip
    in front of it in frame 3; everything else stays visible."""
    mask = np.ones((21, 21), np.float32)
    bg = Layer(ramp(60, 100), None, (49.5, 29.5))
    sq = Layer(ramp(21, 21, 0.9), mask, (30.0, 30.0), shift=(20.0, 0.0))
    flow, visible, owner = Scene([bg, sq], (100, 60)).truth()
    ys, xs = np.mgrid[0:60, 0:100]
    on_square = (np.abs(xs - 30) <= 10) & (np.abs(ys - 30) <= 10)
    covered_later = (xs >= 40) & (xs <= 60) & (np.abs(ys - 30) <= 10) & ~on_square
    far = lambda m: cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # noqa: E731
    assert (owner[far(on_square)] == 1).all() and (owner[far(~on_square)] == 0).all()
    np.testing.assert_allclose(flow[far(on_square)], [[20.0, 0.0]] * far(on_square).sum(), atol=1e-6)
    np.testing.assert_allclose(flow[far(~on_square)], 0, atol=1e-6)
    assert visible[far(on_square)].all() and not visible[far(covered_later)].any()
    assert visible[far(~on_square & ~covered_later)].all()


def test_motion_reaches_but_never_exceeds_the_bound():
    lm = LayeredMotion((128, 128), max_motion=32, jitter=False)
    g = torch.Generator().manual_seed(0)
    mags = [np.linalg.norm(lm.sample(g)[1]["flow"], axis=-1) for _ in range(6)]
    assert max(m.max() for m in mags) <= 32 + 1e-3
    assert max(m.max() for m in mags) >= 0.85 * 32
    small = np.mean([(m < 4).mean() for m in mags])
    assert small > 0.05  # small motions are not starved


def test_no_held_out_texture_is_used():
    """Training textures: never a held-out still image, never a clip frame after the cut."""
    assert not set(SYNTHETIC_TRAIN_IMAGES) & set(SYNTHETIC_VAL_IMAGES)
    assert "stereo_motorcycle" in SYNTHETIC_VAL_IMAGES  # the motorcycle evaluation pair's image
    with pytest.raises(ValueError, match="held out"):
        LayeredMotion(split="train", images=("camera", "coffee"))
    with pytest.raises(ValueError, match="no clips"):
        LayeredMotion(split="val", clips=[Clip("c", np.zeros((10, 8, 8, 3), np.uint8))])
    clip = Clip("c", np.zeros((40, 48, 64, 3), np.uint8))
    lm = LayeredMotion((64, 64), clips=[clip], val_fraction=0.25)
    cut = split_index(40, 0.25)
    g = torch.Generator().manual_seed(1)
    sources = [s for _ in range(20) for s in lm.sample(g, truth=False)[1]["sources"]]
    images = {s[1] for s in sources if s[0] == "image"}
    frames = [s[2] for s in sources if s[0] == "clip"]
    assert images <= set(SYNTHETIC_TRAIN_IMAGES) and len(frames) > 0 and max(frames) < cut
    pairs = validation_pairs(2, (64, 64))
    assert {s[1] for p in pairs for s in p.info["sources"]} <= set(SYNTHETIC_TRAIN_IMAGES)
    held = layered_pairs(2, (64, 64))
    assert {s[1] for p in held for s in p.info["sources"]} <= set(SYNTHETIC_VAL_IMAGES)


class Oracle:
    """A matcher returning the ground truth shifted by ``offset``, on a grid."""

    def __init__(self, pair: EvalPair, offset=(0.0, 0.0)):
        self.pair, self.offset = pair, np.asarray(offset)

    def __call__(self, img1, img3):
        ys, xs = np.mgrid[0:img1.shape[0]:8, 0:img1.shape[1]:8]
        p1 = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
        p3 = p1 + self.pair.flow[ys.ravel(), xs.ravel()] + self.offset
        return type("M", (), dict(pts1=p1, pts3=p3, score=np.ones(len(p1))))


def test_match_accuracy_of_known_matchers():
    pair = layered_pairs(1, (64, 64), seed=2)[0]
    exact = match_accuracy(None, [pair], matcher=Oracle(pair))
    assert exact["APE"] < 1e-5 and exact["Acc@10"] == 1.0 and exact["n"] == pair.valid[::8, ::8].sum()
    off = match_accuracy(None, [pair], matcher=Oracle(pair, (12.0, 0.0)))
    assert abs(off["APE"] - 12.0) < 1e-4 and off["Acc@10"] == 0.0
    with pytest.raises(ValueError):
        match_accuracy(None, [])


def test_best_checkpoint_by_matching_accuracy_and_resume(clip_dir, tmp_path):
    from mind_engine.training.loop import main
    from mind_engine.weights import read_checkpoint

    common = ["--widths", "8,8,8,8,8", "--size", "64x32", "--batch-size", "2", "--threads", "1", "--no-progress",
              "--val-size", "2", "--val-every", "0", "--data", str(clip_dir), "--layered", "0.5",
              "--match-val-every", "2", "--match-val-pairs", "1", "--match-val-size", "64x64", "--select", "match",
              "--warp", "0"]
    full = main(common + ["--steps", "4", "--ckpt-dir", str(tmp_path / "a"), "--log", str(tmp_path / "a.log")])
    recs = full["match_history"]
    assert [r["step"] for r in recs] == [0, 2, 4] and all(0 <= r["match_acc10"] <= 1 for r in recs)
    logged = [json.loads(x) for x in (tmp_path / "a.log").read_text().splitlines()]
    assert [r["match_acc10"] for r in logged] == [r["match_acc10"] for r in recs]
    best = max(recs, key=lambda r: (r["match_acc10"], -r["match_ape"], -r["step"]))
    _, tensors, meta = read_checkpoint(tmp_path / "a" / BEST_NAME)
    assert int(meta["step"]) == best["step"] and recs[-1]["best_step"] == best["step"]
    if best["step"] == 4:
        sd = full["model"].state_dict()
        assert all(torch.equal(tensors[k], sd[k]) for k in sd)
    # a resumed run continues the same records and the same losses
    first = main(common + ["--steps", "4", "--stop-at", "2", "--ckpt-dir", str(tmp_path / "b")])  # one schedule
    rest = main(common + ["--steps", "4", "--ckpt-dir", str(tmp_path / "b"), "--resume"])
    assert first["losses"] + rest["losses"] == full["losses"]
    strip = [{k: v for k, v in r.items() if k != "match_seconds"} for r in rest["match_history"]]
    assert strip == [{k: v for k, v in r.items() if k != "match_seconds"} for r in recs]
