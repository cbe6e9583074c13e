"""The on-device generators (``mind_engine.data.warp``, ``layered_warp``): exact correspondences,
occlusion-aware validity, reproducible batches, checked arguments."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mind_engine.data.layered_warp import LayeredWarp
from mind_engine.data.residual import ResidualWarp
from mind_engine.data.warp import AffineMotion


def resampled(img, pts):
    """``img`` (N, 3, H, W) sampled at (N, H, W, 2) pixel points."""
    h, w = img.shape[-2:]
    n = torch.stack([pts[..., 0] * 2 / (w - 1) - 1, pts[..., 1] * 2 / (h - 1) - 1], -1)
    return F.grid_sample(img, n, mode="bicubic", align_corners=True)


def aligned_error(frames, truth):
    """Mean error of frames 1 and 3 resampled at the correspondences against frame 2, and of the
    unaligned frames, over valid pixels."""
    i1, i2, i3 = frames
    v = truth["valid"][:, None].expand_as(i2)
    err = [(resampled(i, truth[c]) - i2).abs()[v].mean() for i, c in ((i1, "corr1"), (i3, "corr3"))]
    return float(max(err)), float((i1 - i2).abs()[v].mean())


def test_warp_correspondences_are_exact():
    gen = AffineMotion((64, 48), max_motion=6, max_linear=0.05)
    g = torch.Generator().manual_seed(3)
    params = [gen.draw(g) for _ in range(4)]
    for p in params:
        c1, c3 = gen.correspondences(p)
        q = gen.grid - gen.centre
        m = lambda x: p["t"] + (x - gen.centre) @ p["A"].T  # noqa: E731  frame 1 -> 3 motion at a pixel
        torch.testing.assert_close(c1 + m(c1) / 2, q + gen.centre, atol=1e-4, rtol=0)  # I1(p1) shows q
        torch.testing.assert_close(c3 - m(c3) / 2, q + gen.centre, atol=1e-4, rtol=0)  # I3(p3) shows q
    (i1, i2, i3), truth = gen.batch(4, torch.Generator().manual_seed(3), truth=True)
    torch.testing.assert_close(truth["motion"], truth["corr3"] - truth["corr1"])
    aligned, unaligned = aligned_error((i1, i2, i3), truth)  # frames 1, 3 at the correspondences show frame 2
    assert aligned < 0.25 * unaligned


def test_warp_batches_are_reproducible_and_checked():
    gen = AffineMotion((32, 32), max_motion=4)
    a = gen.batch(2, torch.Generator().manual_seed(5))
    b = gen.batch(2, torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(t.shape == (2, 3, 32, 32) and 0 <= float(t.min()) and float(t.max()) <= 1 for t in a)
    with pytest.raises(ValueError, match="max_linear"):
        AffineMotion((32, 32), max_linear=1.5)
    with pytest.raises(ValueError, match="split"):
        AffineMotion((32, 32), split="test")


def test_layered_correspondences_hold_where_visible():
    gen = LayeredWarp((64, 64), max_motion=8, max_linear=0.03, max_layers=3)
    frames, truth = gen.batch(6, torch.Generator().manual_seed(1), truth=True)
    aligned, unaligned = aligned_error(frames, truth)
    assert aligned < 0.25 * unaligned
    inside = gen.inside(truth["corr1"]) & gen.inside(truth["corr3"])
    assert (truth["valid"] & ~inside).sum() == 0 and (inside & ~truth["valid"]).sum() > 0  # occlusions
    with pytest.raises(ValueError, match="max_layers"):
        LayeredWarp((32, 32), max_layers=0)


def test_log_share_draws_small_and_sub_pixel_motions():
    disc, log = AffineMotion((32, 32), max_motion=12), AffineMotion((32, 32), max_motion=12, log_share=1.0)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    lengths = {name: torch.stack([gen.draw(g)["t"].norm() for _ in range(400)])
               for name, gen, g in (("disc", disc, g1), ("log", log, g2))}
    assert float((lengths["disc"] < 2).float().mean()) < 0.1  # the disc: (2/12)^2 = 3 %
    small = float((lengths["log"] < 2).float().mean())
    assert 0.45 < small < 0.65  # log-uniform on [0.25, 12]: ln 8 / ln 48 = 54 %
    assert float(lengths["log"].min()) >= 0.25 - 1e-6 and float(lengths["log"].max()) <= 12 + 1e-5
    with pytest.raises(ValueError, match="log_share"):
        AffineMotion((32, 32), log_share=1.5)


def test_residual_warp_frames_show_the_middle_frame_at_the_truth():
    gen = ResidualWarp((64, 48), max_motion=10, share=1.0, max_error=3.0)
    (i1, i2, i3), truth = gen.batch(4, torch.Generator().manual_seed(1), truth=True)
    residual = truth["motion"].norm(dim=-1)
    assert float(residual.max()) <= 3.0 + 1e-4 and float(residual.max()) > 0.3  # a residual, not the 10 px motion
    aligned, unaligned = aligned_error((i1, i2, i3), truth)
    assert aligned < 0.7 * unaligned  # bilinear resampling blurs: not as close as AffineMotion's exact frames
    plain = ResidualWarp((32, 32), max_motion=4, share=0.0)  # share 0: AffineMotion's samples, same draws
    p = plain.draw(torch.Generator().manual_seed(2))
    assert p["error"] is None and torch.equal(plain.render(p)[0], AffineMotion.render(plain, p)[0])
    with pytest.raises(ValueError, match="share"):
        ResidualWarp((32, 32), share=2.0)
