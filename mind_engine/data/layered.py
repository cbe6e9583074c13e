"""Layered synthetic video (in the spirit of FlyingChairs / FlyingThings) with exact ground truth.

A scene (``scene.Scene``) is a background layer covering the frame and 2-6 foreground layers,
each a random shape (ellipse or star-shaped polygon) cut from a texture, composited back to front
(occlusions), each moving by its own similarity transform (translation, rotation, scale) on a
constant-velocity path. Frames 1, 2, 3 are rendered at t = 0, 1/2, 1 (frame 2 is exactly the
half-way transform) and every frame-1 pixel's position in frame 3 and visibility there are exact
(see ``scene``).

Motion distribution (``max_motion`` M = 32 px by default, frame 1 to frame 3): each layer's
translation has a uniform direction and a magnitude drawn half the time uniformly in [0, M] and
half the time log-uniformly in [M/128, M]. The uniform half gives large motions their weight (a
third of layers move more than M/2); the log-uniform half gives every octave an equal share, so
small motions, where sub-pixel precision is learnt, are not starved (35 % of layers move less
than M/8, against 12.5 % under a uniform draw). Foreground layers spin by up to 10 degrees and
zoom by up to 15 %, the background by 3 degrees and 5 %; when rotation or zoom would move any
point of a layer more than M, the layer's whole motion is scaled down until none does.

Photometric jitter (:func:`jitter`): contrast, brightness, per-channel gain and Gaussian blur drawn
once per triplet and perturbed slightly per frame, then sensor noise drawn independently per
frame. Geometry and ground truth do not depend on it.

Train / held-out split: split 'train' takes textures only from
``synthetic.SYNTHETIC_TRAIN_IMAGES`` and from the frames of the given clips *before* their
held-out cut (``video.split_index``, the same ``val_fraction`` as the video triplets); split 'val'
only from ``synthetic.SYNTHETIC_VAL_IMAGES`` (for ``bench/accuracy.py``), never with clips. No
held-out image or frame is therefore ever a training texture. Every draw comes from a numpy
generator seeded from the caller's ``torch.Generator``: a sample is reproducible from its state.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

import cv2
import numpy as np
import torch

from .augment import augment_triplet, cover, draw_int, flip, flip_field
from .scene import Layer, Scene, apply, inverse
from .sources import Clip, downscale, still_image
from .synthetic import SYNTHETIC_TRAIN_IMAGES, SYNTHETIC_VAL_IMAGES
from .video import split_index

DEFAULT_LAYERED_SIZE = (384, 128)
TIMES = (0.0, 0.5, 1.0)  # frames 1, 2, 3


def jitter(frames: list[np.ndarray], rng: np.random.Generator, per_frame: float = 1.0) -> list[np.ndarray]:
    """Photometric jitter of (H, W, 3) float frames: one draw per triplet, ``per_frame`` scales the
    small per-frame perturbation; noise is independent per frame."""
    contrast, brightness = math.exp(rng.uniform(-0.3, 0.3)), rng.uniform(-0.1, 0.1)
    gain = np.exp(rng.uniform(-0.1, 0.1, 3)).astype(np.float32)
    blur = rng.uniform(0.3, 1.2) if rng.random() < 0.5 else 0.0
    noise = rng.uniform(0.0, 0.02)
    out = []
    for f in frames:
        c = contrast * math.exp(per_frame * rng.normal(0, 0.02))
        b = brightness + per_frame * rng.normal(0, 0.01)
        if blur > 0:
            f = cv2.GaussianBlur(f, (0, 0), blur, borderType=cv2.BORDER_REFLECT)
        f = (f - 0.5) * (c * gain) + 0.5 + b
        f = f + rng.normal(0, noise, f.shape).astype(np.float32)
        out.append(np.clip(f, 0, 1).astype(np.float32))
    return out


@lru_cache(maxsize=32)
def _still(name: str, max_side: int) -> np.ndarray:
    return downscale(still_image(name), max_side)


def magnitude(rng: np.random.Generator, max_motion: float) -> float:
    """A translation length: half uniform in [0, M], half log-uniform in [M/128, M] (see above)."""
    if rng.random() < 0.5:
        return float(rng.uniform(0, max_motion))
    return float(math.exp(rng.uniform(math.log(max_motion / 128), math.log(max_motion))))


def max_displacement(layer: Layer, pts: np.ndarray) -> float:
    """The largest motion t = 0 -> 1 of texture points ``pts`` (N, 2) (the map is affine, so the
    corners of a region bound it)."""
    return float(np.linalg.norm(apply(layer.matrix(1.0), pts) - apply(layer.matrix(0.0), pts), axis=1).max())


def bound_motion(layer: Layer, pts: np.ndarray, max_motion: float) -> Layer:
    """Scale the layer's translation, spin and zoom down until no point of ``pts`` moves more than
    ``max_motion``."""
    for _ in range(50):
        d = max_displacement(layer, pts)
        if d <= max_motion:
            return layer
        k = 0.999 * max_motion / d
        layer = replace(layer, shift=tuple(k * np.asarray(layer.shift)), spin=k * layer.spin, zoom=k * layer.zoom)
    return replace(layer, shift=(0.0, 0.0), spin=0.0, zoom=0.0)


class LayeredMotion:
    """Random layered scenes rendered as triplets, with frame 1 -> frame 3 ground truth.

    ``split`` 'train': textures from ``images`` (default ``SYNTHETIC_TRAIN_IMAGES``, none of
    ``SYNTHETIC_VAL_IMAGES`` allowed) and the training frames of ``clips``; 'val': from
    ``SYNTHETIC_VAL_IMAGES`` only. ``layers`` = (min, max) foreground layers; ``jitter`` off gives
    frames that are exact renders.
    """

    def __init__(self, size=DEFAULT_LAYERED_SIZE, split: str = "train", max_motion: float = 32.0,
                 clips: list[Clip] | None = None, val_fraction: float = 0.2, images=None, layers=(2, 6),
                 jitter: bool = True, max_side: int = 512):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        names = tuple(images) if images is not None else {"train": SYNTHETIC_TRAIN_IMAGES,
                                                         "val": SYNTHETIC_VAL_IMAGES}[split]
        if split == "train" and set(names) & set(SYNTHETIC_VAL_IMAGES):
            raise ValueError(f"images {sorted(set(names) & set(SYNTHETIC_VAL_IMAGES))} are held out for "
                             f"evaluation and cannot be training textures")
        if split == "val" and clips:
            raise ValueError("split 'val' takes no clips (their frames are training textures)")
        if not 0 < max_motion:
            raise ValueError(f"max_motion must be positive, got {max_motion}")
        if not 0 <= layers[0] <= layers[1]:
            raise ValueError(f"layers must be (min, max) with 0 <= min <= max, got {layers}")
        self.size, self.split, self.max_motion = (int(size[0]), int(size[1])), split, float(max_motion)
        self.names, self.layers, self.jitter = names, (int(layers[0]), int(layers[1])), bool(jitter)
        self.images = [_still(n, max_side) for n in names]
        self.clips = [(c, split_index(len(c), val_fraction)) for c in (clips or [])]
        self.clips = [(c, cut) for c, cut in self.clips if cut > 0]
        if not self.images and not self.clips:
            raise ValueError("no textures: give images or clips with training frames")

    def texture(self, rng: np.random.Generator, w: int, h: int):
        """A (h, w, 3) float32 texture patch and where it came from."""
        k = int(rng.integers(len(self.images) + len(self.clips)))
        if k < len(self.images):
            img, source = self.images[k], ("image", self.names[k])
        else:
            clip, cut = self.clips[k - len(self.images)]
            i = int(rng.integers(cut))
            img, source = clip.frames[i], ("clip", clip.name, i)
        img = cover([img], w, h)[0]
        y0, x0 = int(rng.integers(img.shape[0] - h + 1)), int(rng.integers(img.shape[1] - w + 1))
        return img[y0:y0 + h, x0:x0 + w].astype(np.float32) / 255, source

    def _motion(self, rng, max_deg: float, max_zoom: float) -> dict:
        m, phi = magnitude(rng, self.max_motion), rng.uniform(0, 2 * math.pi)
        return dict(shift=(m * math.cos(phi), m * math.sin(phi)), spin=math.radians(rng.uniform(-max_deg, max_deg)),
                    zoom=float(rng.uniform(-max_zoom, max_zoom)))

    def _background(self, rng):
        w, h = self.size
        centre = ((w - 1) / 2 + rng.uniform(-8, 8), (h - 1) / 2 + rng.uniform(-8, 8))
        layer = Layer(np.zeros((1, 1, 3), np.float32), None, centre, angle=float(rng.uniform(-0.2, 0.2)),
                      scale=math.exp(rng.uniform(-0.2, 0.2)), **self._motion(rng, 3.0, 0.05))
        corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
        layer = bound_motion(layer, apply(inverse(layer.matrix(0.0)), corners), self.max_motion)
        # texture offsets from the centre that frames 1-3 see, at their extreme corners
        reach = np.abs(np.concatenate([apply(inverse(layer.matrix(t)), corners) for t in TIMES]))
        tw, th = (2 * int(math.ceil(r)) + 3 for r in reach.max(0))
        tex, source = self.texture(rng, tw, th)
        return replace(layer, texture=tex), source

    def _foreground(self, rng):
        w, h = self.size
        radius = rng.uniform(0.12, 0.45) * min(w, h)
        scale = math.exp(rng.uniform(-0.3, 0.3))
        n = 2 * int(math.ceil(radius / scale)) + 3
        tex, source = self.texture(rng, n, n)
        mask = np.zeros((n, n), np.uint8)
        c, r = (n - 1) / 2, (n - 3) / 2
        if rng.random() < 0.5:
            axes = (max(1, int(r * rng.uniform(0.4, 1))), max(1, int(r * rng.uniform(0.4, 1))))
            cv2.ellipse(mask, (int(round(c)), int(round(c))), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            k = int(rng.integers(3, 9))
            ang = np.sort(rng.uniform(0, 2 * math.pi, k))
            rad = r * rng.uniform(0.4, 1.0, k)
            poly = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1)
            cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        layer = Layer(tex, mask.astype(np.float32), (rng.uniform(0, w - 1), rng.uniform(0, h - 1)),
                      angle=float(rng.uniform(-math.pi, math.pi)), scale=scale, **self._motion(rng, 10.0, 0.15))
        corners = np.array([[0, 0], [n - 1, 0], [0, n - 1], [n - 1, n - 1]], np.float64)
        return bound_motion(layer, corners, self.max_motion), source

    def scene(self, rng: np.random.Generator) -> tuple[Scene, list]:
        """A random scene and the sources of its textures."""
        bg, src = self._background(rng)
        layers, sources = [bg], [src]
        for _ in range(int(rng.integers(self.layers[0], self.layers[1] + 1))):
            layer, src = self._foreground(rng)
            layers.append(layer)
            sources.append(src)
        return Scene(layers, self.size), sources

    def sample(self, g: torch.Generator, augment: bool = False, truth: bool = True):
        """A triplet (three (3, H, W) float tensors in [0, 1]) and a dict with ``seed``,
        ``sources`` and (with ``truth``) the frame 1 -> 3 ground truth ``flow`` (H, W, 2),
        ``visible`` (H, W), ``layer`` (H, W). ``augment``: time reversal (of the scene, so the
        ground truth stays exact) and the paper's flips. Training batches skip the truth."""
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=g))
        rng = np.random.default_rng(seed)
        scene, sources = self.scene(rng)
        reverse, mode = (bool(draw_int(2, g)), draw_int(4, g)) if augment else (False, 0)
        if reverse:
            scene = scene.reversed()
        frames = [scene.render(t) for t in TIMES]
        if self.jitter:
            frames = jitter(frames, rng)
        ts = [torch.from_numpy(f).permute(2, 0, 1).contiguous() for f in frames]
        info = dict(seed=seed, sources=sources, reverse=reverse, flip=mode)
        if truth:
            flow, visible, owner = scene.truth()
            if mode:
                flow = flip_field(flow, mode)
                visible, owner = (flip(torch.from_numpy(a), mode).numpy() for a in (visible, owner))
            info.update(flow=flow, visible=visible, layer=owner)
        return augment_triplet(*ts, False, mode), info

    def batch(self, batch_size: int, g: torch.Generator, augment: bool = True):
        ts = [self.sample(g, augment, truth=False)[0] for _ in range(batch_size)]
        return tuple(torch.stack([t[k] for t in ts]) for k in range(3))

    def fixed(self, n: int, seed: int = 0):
        """``n`` deterministic un-augmented triplets with their ground truth."""
        g = torch.Generator().manual_seed(seed)
        return [self.sample(g, augment=False) for _ in range(n)]
