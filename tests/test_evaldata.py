"""Evaluation data: KITTI / Sintel readers on files written here, motorcycle and synthetic pairs."""
import cv2
import numpy as np
import pytest

from mind_engine.evaluation import pairs as E


def _flow(h=7, w=9, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 20, (h, w, 2)) * 64).round().astype(np.float32) / 64  # KITTI's 1/64 px grid


def test_kitti_png_roundtrip_and_encoding(tmp_path):
    flow = _flow()
    valid = np.ones(flow.shape[:2], bool)
    valid[2, 3] = False
    p = E.write_kitti_flow(tmp_path / "000000_10.png", flow, valid)
    raw = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (7, 9, 3)
    # file channels: R = u, G = v (value - 2^15) / 64, B = valid  (OpenCV order BGR)
    assert raw[0, 0, 2] == flow[0, 0, 0] * 64 + 2 ** 15 and raw[0, 0, 1] == flow[0, 0, 1] * 64 + 2 ** 15
    f, v = E.read_kitti_flow(p)
    assert v.tolist() == valid.tolist()
    np.testing.assert_array_equal(f[valid], flow[valid])
    assert (f[~valid] == 0).all()


def test_kitti_reader_rejects_other_pngs(tmp_path):
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="KITTI"):
        E.read_kitti_flow(tmp_path / "x.png")
    with pytest.raises(FileNotFoundError):
        E.read_kitti_flow(tmp_path / "missing.png")


def test_flo_roundtrip_and_layout(tmp_path):
    flow = _flow(5, 6).astype(np.float32)
    p = E.write_flo(tmp_path / "a.flo", flow)
    raw = p.read_bytes()
    assert np.frombuffer(raw[:4], np.float32)[0] == 202021.25
    assert np.frombuffer(raw[4:12], np.int32).tolist() == [6, 5] and len(raw) == 12 + 5 * 6 * 8
    np.testing.assert_array_equal(E.read_flo(p), flow)
    (tmp_path / "bad.flo").write_bytes(raw[:40])
    with pytest.raises(ValueError, match="truncated"):
        E.read_flo(tmp_path / "bad.flo")
    (tmp_path / "neg.flo").write_bytes(raw[:4] + np.array([-6, -5], np.int32).tobytes() + raw[12:])
    with pytest.raises(ValueError, match="bad .flo size"):
        E.read_flo(tmp_path / "neg.flo")
    (tmp_path / "x.flo").write_bytes(b"JUNK" + raw[4:])
    with pytest.raises(ValueError, match="not a .flo"):
        E.read_flo(tmp_path / "x.flo")


def test_kitti_and_sintel_folders(tmp_path):
    rng = np.random.default_rng(1)
    k = tmp_path / "kitti"
    for d in ("colored_0", "flow_noc"):
        (k / d).mkdir(parents=True)
    for f in ("000000_10.png", "000000_11.png"):
        cv2.imwrite(str(k / "colored_0" / f), rng.integers(0, 255, (40, 120, 3), dtype=np.uint8))
    E.write_kitti_flow(k / "flow_noc" / "000000_10.png", np.full((40, 120, 2), 4.0, np.float32))
    (p,) = list(E.kitti2012_pairs(k, size=(60, 20)))
    assert p.img1.shape == (20, 60, 3) and p.valid.all()
    np.testing.assert_allclose(p.flow[..., 0], 2.0)  # scaled with the image
    s = tmp_path / "sintel"
    for d in ("final/alley", "flow/alley"):
        (s / d).mkdir(parents=True)
    for n in (1, 2):
        cv2.imwrite(str(s / "final/alley" / f"frame_{n:04d}.png"), rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
    E.write_flo(s / "flow/alley/frame_0001.flo", np.full((32, 64, 2), -2.0, np.float32))
    (p,) = list(E.sintel_pairs(s, size=(32, 16)))
    assert p.img1.shape == (16, 32, 3) and p.name.endswith("alley/frame_0001")
    np.testing.assert_allclose(p.flow, -1.0)


def _photometric(p, shift=0.0):
    h, w = p.valid.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    warped = cv2.remap(p.img3.astype(np.float32), xs + p.flow[..., 0] + shift, ys + p.flow[..., 1], cv2.INTER_LINEAR)
    return np.abs(warped - p.img1).mean(-1)[p.valid].mean()


def test_motorcycle_ground_truth_is_honest():
    p = E.motorcycle(256)
    assert p.img1.shape == (173, 256, 3) and p.valid.mean() > 0.4
    lo, hi = p.info["disparity_range"]
    s = p.info["scale"]
    assert 0 < lo < hi <= 60 * s + 1e-3 and (p.flow[..., 1] == 0).all()
    # the true disparity aligns the views far better than being 2 px off
    assert _photometric(p) < 0.5 * _photometric(p, 2.0)


def test_synthetic_pairs_ground_truth_aligns_frames():
    (p,) = E.synthetic_pairs(1, size=(96, 64), max_motion=6.0)
    assert p.img1.shape == (64, 96, 3) and p.img1.dtype == np.uint8 and p.valid.mean() > 0.8
    assert np.linalg.norm(p.flow[p.valid], axis=1).max() <= 6.0 + 1e-3
    assert _photometric(p) < 0.3 * np.abs(p.img1.astype(float) - p.img3).mean()


def test_synthetic_flow_agrees_with_the_middle_frame_correspondences():
    from mind_engine.evaluation.metrics import sample_flow

    (p,) = E.synthetic_pairs(1, size=(96, 64), max_motion=6.0, seed=3)
    c1, c3, ok = p.mid_corr
    ys, xs = np.nonzero(ok)
    pick = np.random.default_rng(0).choice(len(ys), 200, replace=False)
    q1, q3 = c1[ys[pick], xs[pick]], c3[ys[pick], xs[pick]]
    gt, good = sample_flow(p.flow, p.valid, q1)
    assert good.mean() > 0.9
    np.testing.assert_allclose(q1[good] + gt[good], q3[good], atol=0.05)
