"""Layered scenes: textured layers moving by similarity transforms, rendered back to front, with
exact frame 1 -> frame 3 ground truth (``layered`` draws random ones).

Each layer moves along a constant-velocity path, t in [0, 1] from frame 1 to frame 3::

    x(t) = c + t d + s exp(t z) R(a + t w) (u - u0)

(u a texture pixel, u0 the texture centre, c where u0 lies at t = 0, d the translation, w the
spin, z the log zoom). A frame at time t is rendered directly from the textures by backward
bilinear sampling (``torch.nn.functional.grid_sample``, float coordinates, no resampling of a
rendered frame) and composited in painter's order: a layer's weight is its alpha times the
transparency of every layer above it. Rendered at t = 1/2, the middle frame *is* the half-way
transform of every layer.

Ground truth (:meth:`Scene.truth`): pixel p of frame 1 belongs to the layer of largest weight
there; it lies at p3 = A(1) A(0)^-1 p in frame 3 (A(t) the layer's map above) and is *visible*
there when p3 is inside frame 3 and that layer's weight is at least 1/2 both at p in frame 1 and
at p3 in frame 3 (not occluded by a layer in front, not on a blended edge).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Layer:
    """A textured layer and its motion. ``texture`` (h, w, 3) float32 in [0, 1]; ``mask`` (h, w)
    float32 alpha, None for an opaque layer (the background, sampled with border padding)."""

    texture: np.ndarray
    mask: np.ndarray | None
    centre: tuple  # c: where the texture centre lies at t = 0, (x, y)
    shift: tuple = (0.0, 0.0)  # d: translation from t = 0 to t = 1
    angle: float = 0.0  # a, radians, at t = 0
    spin: float = 0.0  # w: rotation from t = 0 to t = 1, radians
    scale: float = 1.0  # s at t = 0
    zoom: float = 0.0  # z: log of the scale change from t = 0 to t = 1

    def matrix(self, t: float) -> np.ndarray:
        """The 2x3 map from texture pixel (x, y) to frame position at time t."""
        s, a = self.scale * math.exp(t * self.zoom), self.angle + t * self.spin
        r = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        h, w = self.texture.shape[:2]
        u0 = np.array([(w - 1) / 2, (h - 1) / 2])
        shift = np.asarray(self.centre, np.float64) + t * np.asarray(self.shift, np.float64) - r @ u0
        return np.hstack([r, shift[:, None]])

    def reversed(self) -> "Layer":
        """The same layer moving backwards in time (t -> 1 - t)."""
        c = tuple(np.asarray(self.centre, np.float64) + np.asarray(self.shift, np.float64))
        return replace(self, centre=c, shift=tuple(-np.asarray(self.shift, np.float64)),
                       angle=self.angle + self.spin, spin=-self.spin,
                       scale=self.scale * math.exp(self.zoom), zoom=-self.zoom)

    def rgba(self) -> torch.Tensor:
        a = np.ones(self.texture.shape[:2], np.float32) if self.mask is None else self.mask
        return torch.from_numpy(np.dstack([self.texture, a]).astype(np.float32)).permute(2, 0, 1)[None]


def inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine map."""
    a = np.linalg.inv(m[:, :2])
    return np.hstack([a, -a @ m[:, 2:]])


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """A 2x3 map applied to (..., 2) points."""
    return pts @ m[:, :2].T + m[:, 2]


class Scene:
    """Layers (background first) in a frame of ``size`` = (W, H): rendering and ground truth."""

    def __init__(self, layers: list[Layer], size):
        if not layers:
            raise ValueError("a scene needs at least one layer (the background)")
        self.layers, self.size = list(layers), (int(size[0]), int(size[1]))
        self._rgba = [layer.rgba() for layer in self.layers]
        w, h = self.size
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        self.grid = np.stack([xs, ys], -1)

    def samples(self, t: float, pts: np.ndarray) -> torch.Tensor:
        """(L, 4, H, W): each layer's colour and alpha at frame points ``pts`` (H, W, 2), time t."""
        out, x, y = [], pts[..., 0], pts[..., 1]
        for layer, rgba in zip(self.layers, self._rgba):
            h, w = rgba.shape[-2:]
            # frame point -> texture pixel -> grid_sample's [-1, 1] (align_corners=True)
            m = np.diag([2 / max(w - 1, 1), 2 / max(h - 1, 1)]) @ inverse(layer.matrix(t))
            g = np.empty((1, *x.shape, 2), np.float32)
            g[0, ..., 0] = m[0, 0] * x + m[0, 1] * y + (m[0, 2] - 1)
            g[0, ..., 1] = m[1, 0] * x + m[1, 1] * y + (m[1, 2] - 1)
            out.append(F.grid_sample(rgba, torch.from_numpy(g), mode="bilinear",
                                     padding_mode="border" if layer.mask is None else "zeros",
                                     align_corners=True)[0])
        return torch.stack(out)

    @staticmethod
    def weights(alpha: torch.Tensor) -> torch.Tensor:
        """Painter's-order compositing weights (L, H, W) from alphas (L, H, W), layer 0 at the back."""
        above = torch.cumprod(torch.flip(1 - alpha, [0]), 0)  # transparency of layers >= l, from the top
        above = torch.flip(torch.cat([torch.ones_like(alpha[:1]), above[:-1]]), [0])  # of layers > l
        return alpha * above

    def render(self, t: float) -> np.ndarray:
        """The frame at time t, (H, W, 3) float32."""
        s = self.samples(t, self.grid)
        wts = self.weights(s[:, 3])
        return (wts[:, None] * s[:, :3]).sum(0).permute(1, 2, 0).numpy()

    def truth(self):
        """For every pixel p of frame 1: ``flow`` (H, W, 2) float32 (its position in frame 3 minus
        p), ``visible`` (H, W) bool and ``layer`` (H, W) int (the layer it belongs to)."""
        w0 = self.weights(self.samples(0.0, self.grid)[:, 3])
        owner = w0.numpy().argmax(0)
        p3 = np.zeros_like(self.grid)
        for k, layer in enumerate(self.layers):
            sel = owner == k
            if sel.any():
                p3[sel] = apply(layer.matrix(1.0) @ np.vstack([inverse(layer.matrix(0.0)), [0, 0, 1]]), self.grid[sel])
        w3 = self.weights(self.samples(1.0, p3)[:, 3])
        own = torch.from_numpy(owner)[None]
        w, h = self.size
        inside = (p3[..., 0] >= 0) & (p3[..., 0] <= w - 1) & (p3[..., 1] >= 0) & (p3[..., 1] <= h - 1)
        visible = inside & (w0.gather(0, own)[0] >= 0.5).numpy() & (w3.gather(0, own)[0] >= 0.5).numpy()
        return (p3 - self.grid).astype(np.float32), visible, owner

    def reversed(self) -> "Scene":
        return Scene([layer.reversed() for layer in self.layers], self.size)
