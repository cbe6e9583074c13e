"""``Matches.texture``: blank and ramp-like matches are recognisable, textured ones are not
flagged, and every tier, level count and refinement gives the same texture for the same points."""
import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine.matches import Matches
from mind_engine.texture import TEXTURE_MIN, texture_at

pytestmark = pytest.mark.usefixtures("one_thread")


def _brute(img: np.ndarray, x: int, y: int) -> float:
    """The definition, spelled out: Sobel / 8 of the grey image (edges replicated), the structure
    tensor's mean over [x-10, x+10) x [y-10, y+10) clipped, the root of its smaller eigenvalue."""
    g = np.pad(img.astype(np.float64).mean(2), 1, mode="edge")
    h, w = img.shape[:2]
    gx = ((g[:-2, 2:] + 2 * g[1:-1, 2:] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[1:-1, :-2] + g[2:, :-2])) / 8
    gy = ((g[2:, :-2] + 2 * g[2:, 1:-1] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[:-2, 1:-1] + g[:-2, 2:])) / 8
    win = (slice(max(y - 10, 0), min(y + 10, h)), slice(max(x - 10, 0), min(x + 10, w)))
    a, b = gx[win].ravel(), gy[win].ravel()
    tensor = np.array([[a @ a, a @ b], [a @ b, b @ b]]) / a.size
    return float(np.sqrt(max(np.linalg.eigvalsh(tensor)[0], 0)))


def test_texture_is_the_structure_tensor_s_weaker_direction_over_the_score_window(pair):
    img = pair[0]
    pts = np.array([[0, 0], [49, 39], [25, 20], [3.4, 36.6], [12, 5]], np.float32)
    got = texture_at(torch.from_numpy(img).permute(2, 0, 1).float() / 255, pts)
    want = [_brute(img, int(round(x)), int(round(y))) for x, y in pts]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_blank_and_ramp_images_have_no_texture():
    flat = torch.full((3, 40, 50), 0.5)
    ramp = torch.linspace(0, 1, 50).expand(3, 40, 50)
    pts = np.array([[0, 0], [25, 20], [49, 39]])
    assert texture_at(flat, pts).tolist() == [0, 0, 0]
    assert np.all(texture_at(ramp, pts) < 1e-3)  # varies in one direction only: a point slides along it


def _photo(shift=(0, 0)):
    from mind_engine.data.sources import still_image

    dx, dy = shift
    return np.ascontiguousarray(still_image("astronaut")[100 - dy:164 - dy, 200 - dx:264 - dx])


def test_a_constant_pair_s_matches_are_flagged_and_a_photo_s_mostly_are_not():
    grey = np.full((64, 64, 3), 128, np.uint8)
    blank = me.match(grey, grey, stride=16, radius=8)
    assert len(blank) == 16 and np.all(blank.texture == 0) and len(blank.textured()) == 0
    assert np.median(blank.score) > 3  # what the score alone says about nothing
    real = me.match(_photo(), _photo((2, 1)), stride=16, radius=8)
    assert (real.texture >= TEXTURE_MIN).mean() >= 0.9, real.texture
    assert len(real.textured()) == (real.texture >= TEXTURE_MIN).sum()
    assert len(real.textured(min_texture=1e9)) == 0


def test_every_tier_and_path_gives_the_same_texture(net, pair):
    img1, img3 = pair
    ref = me.match(img1, img3, model=net, stride=8, radius=6, tier="t0")
    for tier in ("t1", "t2", "t3"):
        m = me.match(img1, img3, model=net, stride=8, radius=6, tier=tier)
        np.testing.assert_array_equal(m.pts1, ref.pts1)
        np.testing.assert_array_equal(m.texture, ref.texture)
    t1 = torch.from_numpy(img1).permute(2, 0, 1).float() / 255
    t3 = torch.from_numpy(img3).permute(2, 0, 1).float() / 255
    for m in (me.match_subpixel(img1, img3, model=net, stride=8, radius=6),
              me.match(img1, img3, model=net, stride=8, radius=6, levels=2)):
        want = np.minimum(texture_at(t1, m.pts1), texture_at(t3, m.pts3))  # on the caller's pair, at the final points
        np.testing.assert_array_equal(m.texture, want)
    assert me.match(img1, img3, model=net, queries=np.zeros((0, 2))).texture.shape == (0,)


def test_matches_made_by_hand_may_leave_texture_out():
    z = np.zeros(2, np.float32)
    m = Matches(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32), z, z, z)
    assert m[:1].texture is None and len(m.top(1)) == 1
    with pytest.raises(ValueError, match="carry no texture"):
        m.textured()
