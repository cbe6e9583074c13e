"""Still textures moved by known affine motions, generated in torch on the training device.

The recipe that escapes the blend (MODEL_CARD.md) starts on simple synthetic motion with rich
texture, as FlowNet's Chairs-then-Things schedule does, before any natural video. This module
makes those triplets with ``grid_sample`` on textures held on the device, so a GPU trains at full
speed (no per-sample numpy on the critical path); the same code runs on the CPU.

Geometry, per sample, in the crop's pixel coordinates (x, y), pixel centres on integers, c the
crop's centre. The motion from frame 1 to frame 3 is affine, ``m(p) = t + A (p - c)``. Frame 2 is
the texture seen through a base map (origin, rotation, scale, mirror: variety of texture, not
motion); frame 1 is frame 2 moved by -m/2 and frame 3 by +m/2, by backward sampling:

    I1(p) = I2(p + m(p) / 2),    I3(p) = I2(p - m(p) / 2)

so the frame-2 pixel q lies in frame 1 at ``p1 = c + (I + A/2)^-1 (q - c - t/2)`` and in frame 3
at ``p3 = c + (I - A/2)^-1 (q - c + t/2)``: exact correspondences, no iteration. With ``A = 0``
this is a global translation by t, frames 1 and 3 at -t/2 and +t/2. All three frames are
resampled bicubically at sub-pixel positions (the base map's origin is a random real), so the
middle frame is never sharper than the outer ones.

Time reversal is the motion's sign, which the symmetric draws cover; flips and rotations are in
the base map. Every random draw comes from the caller's CPU ``torch.Generator``, so a batch is
reproducible from its state on any device.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .sources import downscale, still_image
from .synthetic import SYNTHETIC_TRAIN_IMAGES, SYNTHETIC_VAL_IMAGES

MIN_LOG_MOTION = 0.25  # px: the shortest translation of the log-uniform draws (``AffineMotion.log_share``)


def split_images(split: str = "train", images=None) -> tuple[str, ...]:
    """The still images (skimage names) of ``split``, or ``images`` when given."""
    if images is not None:
        return tuple(images)
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    return {"train": SYNTHETIC_TRAIN_IMAGES, "val": SYNTHETIC_VAL_IMAGES}[split]


def textures_on(device, names, max_side: int = 512) -> list[torch.Tensor]:
    """The still images ``names`` (skimage names) as (3, H, W) float tensors in [0, 1] on ``device``."""
    out = []
    for n in names:
        a = downscale(still_image(n), max_side)
        out.append(torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0).contiguous().to(device))
    return out


def pixel_grid(h: int, w: int, device) -> torch.Tensor:
    """(H, W, 2) float (x, y) pixel coordinates."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys], -1)


def sample_texture(texture: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Bicubic samples of a (3, Ht, Wt) texture at (..., H, W, 2) texture pixel coordinates ->
    (..., 3, H, W), clamped to [0, 1] (bicubic overshoots); reflection outside the texture."""
    ht, wt = texture.shape[-2:]
    lead = pts.shape[:-3]
    p = pts.reshape(-1, *pts.shape[-3:])
    norm = torch.stack([p[..., 0] * (2.0 / (wt - 1)) - 1.0, p[..., 1] * (2.0 / (ht - 1)) - 1.0], -1)
    out = F.grid_sample(texture[None].expand(len(p), -1, -1, -1), norm, mode="bicubic",
                        padding_mode="reflection", align_corners=True)
    return out.clamp_(0.0, 1.0).reshape(*lead, 3, *pts.shape[-3:-1])


def apply_affine(mat: torch.Tensor, vec: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """``mat @ p + vec`` for (..., 2) points with (2, 2) ``mat`` and (2,) ``vec``."""
    return pts @ mat.T + vec


class AffineMotion:
    """Triplets of textures moved by random affine motions, with exact correspondences.

    ``max_motion``: bound on the translation t (frame 1 to frame 3), drawn uniformly over the
    disc of that radius; ``log_share`` of the samples instead draw its length log-uniformly in
    [``MIN_LOG_MOTION``, ``max_motion``] (a uniform angle), so motions of 0-3 px, sub-pixel ones
    included, are common (the disc gives them 6 % of its samples at 12 px: precision at the
    pyramid's finest level needs them, ``bench/motion_probe.py --small``). ``max_linear``: bound on each entry of A (0: pure translation; 0.05
    moves a point 32 px from the centre by up to about 2.3 px more). ``size`` is (W, H).
    ``noise``: the largest standard deviation of the Gaussian sensor noise drawn per triplet and
    added independently to each frame (0: none).
    """

    def __init__(self, size=(64, 64), split: str = "train", max_motion: float = 8.0, max_linear: float = 0.0,
                 device="cpu", images=None, max_side: int = 512, noise: float = 0.0, log_share: float = 0.0):
        self.size = (int(size[0]), int(size[1]))
        self.max_motion, self.max_linear, self.noise = float(max_motion), float(max_linear), float(noise)
        self.log_share = float(log_share)
        if (self.max_motion < 0 or self.max_linear < 0 or self.max_linear >= 1 or self.noise < 0
                or not 0 <= self.log_share <= 1):
            raise ValueError(f"AffineMotion needs max_motion >= 0, 0 <= max_linear < 1, noise >= 0 and 0 <= log_share "
                             f"<= 1; got {max_motion}, {max_linear}, {noise}, {log_share}")
        self.device = torch.device(device)
        self.names = split_images(split, images)
        self.textures = textures_on(self.device, self.names, max_side)
        self.grid = pixel_grid(self.size[1], self.size[0], self.device)
        self.centre = torch.tensor([(self.size[0] - 1) / 2, (self.size[1] - 1) / 2], device=self.device)

    def draw(self, g: torch.Generator) -> dict:
        """One sample's parameters (CPU tensors): texture index, base map, motion t and A."""
        u = torch.rand(8, generator=g, dtype=torch.float64)
        radius = self.max_motion * math.sqrt(float(u[0]))
        if self.log_share > 0 and float(torch.rand((), generator=g, dtype=torch.float64)) < self.log_share:
            low = min(MIN_LOG_MOTION, self.max_motion)
            radius = low * (self.max_motion / low) ** float(u[0]) if low > 0 else 0.0
        angle = 2 * math.pi * float(u[1])
        t = torch.tensor([radius * math.cos(angle), radius * math.sin(angle)])
        a = (torch.rand(2, 2, generator=g, dtype=torch.float64) * 2 - 1) * self.max_linear
        theta, scale = 2 * math.pi * float(u[2]), math.exp(math.log(1.5) * (2 * float(u[3]) - 1))
        mirror = -1.0 if float(u[4]) < 0.5 else 1.0
        rot = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        base = scale * rot @ torch.diag(torch.tensor([mirror, 1.0]))
        index = int(torch.randint(len(self.textures), (1,), generator=g))
        return {"index": index, "base": base.float(), "t": t.float(), "A": a.float(),
                "where": (float(u[5]), float(u[6])), "noise": self.noise * float(u[7])}

    def _origin(self, p: dict) -> torch.Tensor:
        """Texture point of the crop's centre, far enough from the texture's edge that every
        frame's samples fall inside it when the texture is large enough."""
        tex = self.textures[p["index"]]
        ht, wt = tex.shape[-2:]
        w, h = self.size
        reach = 0.5 * math.hypot(w, h) * float(torch.linalg.matrix_norm(p["base"], 2)) * 1.5 + self.max_motion
        lo_x, hi_x = min(reach, (wt - 1) / 2), max(wt - 1 - reach, (wt - 1) / 2)
        lo_y, hi_y = min(reach, (ht - 1) / 2), max(ht - 1 - reach, (ht - 1) / 2)
        fx, fy = p["where"]
        return torch.tensor([lo_x + fx * (hi_x - lo_x), lo_y + fy * (hi_y - lo_y)])

    def seen(self, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (3, 3, H, W) of the texture under ``p``'s motion, and the frame-2 points each
        frame's pixels show (3, H, W, 2): ``I1(p) = I2(p + m(p)/2)``, ``I3(p) = I2(p - m(p)/2)``."""
        dev = self.device
        base, t, a = p["base"].to(dev), p["t"].to(dev), p["A"].to(dev)
        rel = self.grid - self.centre
        m = t + rel @ a.T  # frame 1 -> 3 motion at every pixel
        shown = torch.stack([rel + m / 2, rel, rel - m / 2])
        frames = sample_texture(self.textures[p["index"]], apply_affine(base, self._origin(p).to(dev), shown))
        return frames, shown + self.centre

    def render(self, p: dict):
        """Frames (3, 3, H, W) of one sample, and what ``truth`` needs beside ``p`` (nothing here)."""
        return self.seen(p)[0], None

    def correspondences(self, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact (H, W, 2) positions in frames 1 and 3 of every frame-2 pixel."""
        dev = self.device
        t, a = p["t"].to(dev), p["A"].to(dev)
        eye = torch.eye(2, device=dev)
        rel = self.grid - self.centre
        p1 = self.centre + (rel - t / 2) @ torch.linalg.inv(eye + a / 2).T
        p3 = self.centre + (rel + t / 2) @ torch.linalg.inv(eye - a / 2).T
        return p1, p3

    def inside(self, c: torch.Tensor) -> torch.Tensor:
        """Whether (..., 2) points lie in the frame."""
        w, h = self.size
        return (c[..., 0] >= 0) & (c[..., 0] <= w - 1) & (c[..., 1] >= 0) & (c[..., 1] <= h - 1)

    def truth(self, p: dict, rendered) -> dict:
        """One sample's ``corr1``, ``corr3``, ``motion`` (H, W, 2) and ``valid`` (H, W)."""
        c1, c3 = self.correspondences(p)
        return {"corr1": c1, "corr3": c3, "motion": c3 - c1, "valid": self.inside(c1) & self.inside(c3)}

    def batch(self, batch_size: int, g: torch.Generator, truth: bool = False):
        """``batch_size`` triplets ((N, 3, H, W) each, on the device); with ``truth`` also a dict
        of (N, H, W, 2) ``corr1``, ``corr3``, ``motion`` (frame 1 -> 3 at frame 2's pixel, i.e.
        corr3 - corr1) and (N, H, W) ``valid`` (both correspondences inside the frames, and for
        layered scenes visible there)."""
        params = [self.draw(g) for _ in range(batch_size)]
        noise = [torch.randn(3, 3, self.size[1], self.size[0], generator=g) * p["noise"] if p["noise"] else None
                 for p in params]
        frames, truths = [], []
        for p, n in zip(params, noise):
            f, rendered = self.render(p)
            frames.append(f if n is None else (f + n.to(self.device)).clamp_(0.0, 1.0))
            if truth:
                truths.append(self.truth(p, rendered))
        stacked = torch.stack(frames)
        out = (stacked[:, 0], stacked[:, 1], stacked[:, 2])
        if not truth:
            return out
        return out, {k: torch.stack([t[k] for t in truths]) for k in truths[0]}
