"""Evaluation pairs with ground truth: synthetic motion, Middlebury motorcycle, KITTI 2012, Sintel.

Every source yields :class:`EvalPair`: two uint8 HxWx3 images and the true displacement of
image-1 pixels into image 3 (``flow`` (H, W, 2) float32, (dx, dy)) with its ``valid`` mask; see
:mod:`mind_engine.evaluation.metrics` for how matches are judged against it.

* :func:`synthetic_pairs`: held-out still images (``data.synthetic.SYNTHETIC_VAL_IMAGES``) moved by a
  smooth random motion (``data.synthetic.SyntheticMotion``, split 'val'). Frame 1 pixel ``p`` shows the
  frame-2 point ``q = p + m(p)/2``, which lies at ``corr3(q)`` in frame 3, so
  ``flow(p) = corr3(q) - p`` (``corr3`` sampled bilinearly: it is smooth); valid where ``q`` and
  ``corr3(q)`` lie inside the frames.
* :func:`layered_pairs`: layered scenes (``data.layered.LayeredMotion``): foreground shapes
  moving over a moving background with occlusions, motion up to ``max_motion`` (32 px by
  default); split 'val' (the default) takes textures only from the held-out still images.
  ``flow`` is the exact frame 1 -> 3 ground truth, ``valid`` where the point stays visible.
* :func:`motorcycle`: the Middlebury 2014 motorcycle pair in ``skimage.data`` (741 x 500, left
  view's disparity, inf = unknown). Left is image 1, right is image 3: ``flow = (-d, 0)``.
  Downscaled by area averaging to ``width``; the disparity is scaled by the same factor, and a
  downscaled pixel is valid only if every full-resolution disparity under it is known and they
  span at most ``max_spread`` downscaled pixels (no averaging across depth edges). The range of
  disparities kept is reported in ``info['disparity_range']``.
* :func:`read_kitti_flow` / :func:`kitti2012_pairs`: KITTI flow 2012 ground truth, 16-bit PNG
  with R = u, G = v (``(value - 2**15) / 64``) and B = valid.
* :func:`read_flo` / :func:`sintel_pairs`: MPI-Sintel ``.flo`` files (magic 202021.25, width,
  height, then (u, v) float32 per pixel); occluded pixels are invalid when the occlusion masks
  are present.

The paper evaluates at the network's working size (KITTI 384 x 128, Sintel 256 x 128): the
KITTI / Sintel loaders resize images and ground truth to ``size`` (:func:`resize_flow`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..safe_write import write_bytes

FLO_MAGIC = 202021.25


@dataclass
class EvalPair:
    """Two images and the true displacement of image-1 pixels into image 3."""

    name: str
    img1: np.ndarray  # uint8 HxWx3
    img3: np.ndarray
    flow: np.ndarray  # float32 HxWx2 (dx, dy)
    valid: np.ndarray  # bool HxW
    info: dict = field(default_factory=dict)
    # synthetic pairs only: where each middle-frame pixel q lies in image 1 and image 3, (H, W, 2)
    # each, and where both are inside -- the ground truth of MIND's own (q -> p1, q -> p3) pairs
    mid_corr: tuple | None = None

    def __post_init__(self):
        if self.img1.shape != self.img3.shape or self.flow.shape[:2] != self.img1.shape[:2] \
                or self.valid.shape != self.img1.shape[:2]:
            raise ValueError(f"{self.name}: image, flow and mask sizes differ: {self.img1.shape}, "
                             f"{self.img3.shape}, {self.flow.shape}, {self.valid.shape}")


def _u8(t) -> np.ndarray:
    """(3, H, W) float tensor in [0, 1] -> HxWx3 uint8."""
    return (t.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, 2)
    return np.ascontiguousarray(a[:, :, :3])


# ----------------------------------------------------------------------------- synthetic


def synthetic_pairs(n: int = 4, size=(384, 128), max_motion: float = 8.0, seed: int = 0,
                    images=None) -> list[EvalPair]:
    """``n`` deterministic synthetic-motion pairs from the held-out still images."""
    from ..data.synthetic import SyntheticMotion

    sm = SyntheticMotion(size=size, split="val", max_motion=max_motion, images=images)
    pairs = []
    for k, ((i1, _, i3), info) in enumerate(sm.fixed(n, seed)):
        corr3, motion = info["corr3"], info["motion"]
        h, w = corr3.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        qx, qy = xs + motion[..., 0] / 2, ys + motion[..., 1] / 2
        p3 = cv2.remap(corr3, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        flow = p3 - np.stack([xs, ys], -1)
        valid = ((qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)
                 & (p3[..., 0] >= 0) & (p3[..., 0] <= w - 1) & (p3[..., 1] >= 0) & (p3[..., 1] <= h - 1))
        mag = np.linalg.norm(flow[valid], axis=1)
        pairs.append(EvalPair(f"synthetic/{k}", _u8(i1), _u8(i3), flow.astype(np.float32), valid,
                              dict(seed=info["seed"], max_motion=max_motion,
                                   motion_range=[float(mag.min()), float(mag.max())] if mag.size else None),
                              mid_corr=(info["corr1"], info["corr3"], info["valid"])))
    return pairs


def layered_pairs(n: int = 3, size=(384, 128), max_motion: float = 32.0, seed: int = 0, split: str = "val",
                  clips=None, val_fraction: float = 0.2, jitter: bool = False) -> list[EvalPair]:
    """``n`` deterministic layered-motion pairs (frames 1 and 3 of ``LayeredMotion.fixed``), from
    the held-out textures unless ``split`` is 'train' (training-time validation)."""
    from ..data.layered import LayeredMotion

    lm = LayeredMotion(size, split, max_motion, clips=clips, val_fraction=val_fraction, jitter=jitter)
    pairs = []
    for k, ((i1, _, i3), info) in enumerate(lm.fixed(n, seed)):
        mag = np.linalg.norm(info["flow"][info["visible"]], axis=1)
        pairs.append(EvalPair(f"layered/{k}", _u8(i1), _u8(i3), info["flow"], info["visible"],
                              dict(seed=info["seed"], max_motion=max_motion, layers=len(info["sources"]) - 1,
                                   sources=[list(s) for s in info["sources"]],
                                   motion_range=[float(mag.min()), float(mag.max())] if mag.size else None)))
    return pairs


# ----------------------------------------------------------------------------- motorcycle


def motorcycle(width: int | None = 384, max_spread: float = 1.0) -> EvalPair:
    """The Middlebury motorcycle stereo pair, left -> right, downscaled to ``width`` (None: full)."""
    import skimage.data

    left, right, disp = skimage.data.stereo_motorcycle()
    h0, w0 = disp.shape
    known = np.isfinite(disp)
    if width is None or width >= w0:
        s, size = 1.0, (w0, h0)
        img1, img3, d, valid = _rgb(left), _rgb(right), np.where(known, disp, 0).astype(np.float32), known
    else:
        s = width / w0
        size = (int(width), int(round(h0 * s)))
        img1 = cv2.resize(_rgb(left), size, interpolation=cv2.INTER_AREA)
        img3 = cv2.resize(_rgb(right), size, interpolation=cv2.INTER_AREA)
        dz = np.where(known, disp, 0).astype(np.float32)
        k = 2 * int(np.ceil(1 / s)) + 1  # covers every full-res pixel an output pixel averages
        kernel = np.ones((k, k), np.uint8)
        hi = cv2.dilate(np.where(known, disp, -np.inf).astype(np.float32), kernel)
        lo = cv2.erode(np.where(known, disp, np.inf).astype(np.float32), kernel)
        with np.errstate(invalid="ignore", over="ignore"):
            spread = cv2.resize(hi - lo, size, interpolation=cv2.INTER_NEAREST) * s
        coverage = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        d = cv2.resize(dz, size, interpolation=cv2.INTER_AREA) * s
        all_known = cv2.resize((~cv2.dilate((~known).astype(np.uint8), kernel).astype(bool)).astype(np.uint8),
                               size, interpolation=cv2.INTER_NEAREST).astype(bool)
        valid = (coverage >= 1 - 1e-6) & all_known & np.isfinite(spread) & (spread <= max_spread)
        d = np.where(valid, d / np.maximum(coverage, 1e-6), 0).astype(np.float32)
    flow = np.stack([-d, np.zeros_like(d)], -1).astype(np.float32)
    valid = valid & (np.arange(size[0])[None, :] - d >= 0)  # the match must land in the right view
    dv = d[valid]
    info = dict(scale=s, full_size=[w0, h0], size=list(size),
                disparity_range=[float(dv.min()), float(dv.max())] if dv.size else None,
                full_disparity_range=[float(disp[known].min()), float(disp[known].max())],
                valid_fraction=float(valid.mean()), max_spread=max_spread)
    return EvalPair(f"motorcycle/{size[0]}x{size[1]}", img1, img3, flow, valid, info)


# ----------------------------------------------------------------------------- file formats


def read_kitti_flow(path) -> tuple[np.ndarray, np.ndarray]:
    """A KITTI flow 2012/2015 ground-truth PNG -> (flow (H, W, 2) float32, valid (H, W) bool)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no KITTI flow file at {path}")
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None or a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint16:
        raise ValueError(f"{path} is not a KITTI flow PNG (expected 16-bit, 3 channels; got "
                         f"{None if a is None else (a.shape, a.dtype)})")
    b, g, r = a[..., 0], a[..., 1], a[..., 2]  # OpenCV reads BGR: R = u, G = v, B = valid
    flow = (np.stack([r, g], -1).astype(np.float32) - 2 ** 15) / 64.0
    valid = b > 0
    return np.where(valid[..., None], flow, 0).astype(np.float32), valid


def write_kitti_flow(path, flow, valid=None) -> Path:
    """Write (H, W, 2) flow (and valid mask) in the KITTI 16-bit PNG format."""
    flow = np.asarray(flow, np.float64)
    valid = np.ones(flow.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    enc = np.clip(np.round(flow * 64 + 2 ** 15), 0, 2 ** 16 - 1).astype(np.uint16)
    bgr = np.stack([valid.astype(np.uint16), enc[..., 1], enc[..., 0]], -1)
    bgr[~valid, 1:] = 0
    ok, data = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError(f"OpenCV could not encode the flow of {path} as a 16-bit PNG")
    return write_bytes(path, data)


def read_flo(path) -> np.ndarray:
    """A Middlebury/Sintel ``.flo`` file -> flow (H, W, 2) float32."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = np.fromfile(f, np.float32, 1)
        if magic.size != 1 or magic[0] != FLO_MAGIC:
            raise ValueError(f"{path} is not a .flo file (bad magic {magic[:1]})")
        size = np.fromfile(f, np.int32, 2)
        if size.size != 2 or (size <= 0).any() or size.prod(dtype=np.int64) > 2 ** 28:
            raise ValueError(f"{path}: bad .flo size {size.tolist()} (width, height)")
        w, h = (int(v) for v in size)
        data = np.fromfile(f, np.float32, 2 * w * h)
    if data.size != 2 * w * h:
        raise ValueError(f"{path} is truncated: {data.size} values for a {w}x{h} flow")
    return data.reshape(h, w, 2)


def write_flo(path, flow) -> Path:
    """Write (H, W, 2) flow as a ``.flo`` file."""
    flow = np.asarray(flow, np.float32)
    h, w = flow.shape[:2]
    head = np.array([FLO_MAGIC], np.float32).tobytes() + np.array([w, h], np.int32).tobytes()
    return write_bytes(path, head + flow.tobytes())


def resize_flow(flow, valid, size, min_coverage: float = 0.5):
    """Resize ground truth to ``size`` = (W, H): displacements scaled per axis, averaged over the
    valid full-resolution pixels under each output pixel; valid where they cover at least
    ``min_coverage`` of it."""
    h0, w0 = valid.shape
    w, h = size
    v = valid.astype(np.float32)
    cov = cv2.resize(v, (w, h), interpolation=cv2.INTER_AREA)
    s = cv2.resize(np.where(valid[..., None], flow, 0).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    out = s / np.maximum(cov, 1e-6)[..., None] * np.array([w / w0, h / h0], np.float32)
    ok = cov >= min_coverage
    return np.where(ok[..., None], out, 0).astype(np.float32), ok


def _read_image(path) -> np.ndarray:
    import imageio.v3 as iio

    return _rgb(np.asarray(iio.imread(path)))


def _resized_pair(name, f1, f3, flow, valid, size, info):
    img1, img3 = _read_image(f1), _read_image(f3)
    if size is not None:
        flow, valid = resize_flow(flow, valid, size)
        img1 = cv2.resize(img1, tuple(size), interpolation=cv2.INTER_AREA)
        img3 = cv2.resize(img3, tuple(size), interpolation=cv2.INTER_AREA)
    return EvalPair(name, img1, img3, flow, valid, info)


def kitti2012_pairs(root, occ: str = "noc", size=(384, 128), limit: int | None = None):
    """KITTI flow 2012 training pairs under ``root`` (the folder holding ``colored_0`` or
    ``image_0`` and ``flow_noc``/``flow_occ``), resized to ``size`` (None: full resolution)."""
    root = Path(root)
    img_dir = root / "colored_0" if (root / "colored_0").is_dir() else root / "image_0"
    gt_dir = root / f"flow_{occ}"
    if not img_dir.is_dir() or not gt_dir.is_dir():
        raise FileNotFoundError(f"{root} does not look like KITTI flow 2012 training data "
                                f"(need colored_0/ or image_0/ and flow_{occ}/)")
    files = sorted(gt_dir.glob("*_10.png"))[:limit]
    for g in files:
        stem = g.name[:-len("_10.png")]
        flow, valid = read_kitti_flow(g)
        yield _resized_pair(f"kitti2012/{stem}", img_dir / f"{stem}_10.png", img_dir / f"{stem}_11.png",
                            flow, valid, size, dict(source=str(g)))


def sintel_pairs(root, pass_name: str = "final", size=(256, 128), limit: int | None = None):
    """MPI-Sintel training pairs under ``root`` (the ``training`` folder with ``<pass>/``,
    ``flow/`` and optionally ``occlusions/``), resized to ``size`` (None: full resolution)."""
    root = Path(root)
    if not (root / "flow").is_dir() or not (root / pass_name).is_dir():
        raise FileNotFoundError(f"{root} does not look like MPI-Sintel training data "
                                f"(need flow/ and {pass_name}/)")
    flos = sorted((root / "flow").glob("*/*.flo"))[:limit]
    for fl in flos:
        scene, stem = fl.parent.name, fl.stem
        num = int(stem.split("_")[-1])
        f1 = root / pass_name / scene / f"{stem}.png"
        f3 = root / pass_name / scene / f"frame_{num + 1:04d}.png"
        flow = read_flo(fl)
        valid = np.isfinite(flow).all(-1) & (np.abs(flow) < 1e9).all(-1)
        occ = root / "occlusions" / scene / f"{stem}.png"
        if occ.is_file():
            valid &= _read_image(occ)[..., 0] < 128
        yield _resized_pair(f"sintel-{pass_name}/{scene}/{stem}", f1, f3, flow, valid, size, dict(source=str(fl)))
