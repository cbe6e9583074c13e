"""``MindMatcher``: MIND as a ``torch.nn.Module`` with kornia's LoFTR calling convention, so code
written for ``kornia.feature.LoFTR`` can swap it in.

    matcher = MindMatcher()                      # the bundled default model (or a checkpoint path)
    out = matcher({"image0": b0, "image1": b1})  # B x C x H x W, C 1 (kornia's grey) or 3, in [0, 1]
    out["keypoints0"], out["keypoints1"]         # (N, 2) float32 (x, y), on the input's device
    out["confidence"], out["batch_indexes"]      # (N,) float32, (N,) int64

Each image pair of the batch is matched by ``mind_engine.match`` on the matcher's model (so
``matcher.to("cuda")`` moves the work); ``confidence`` is MIND's score (the peak-to-mean ratio of
the sensitivity map: larger is better, not a probability in [0, 1] as LoFTR's). A model passed
in is copied: ``matcher.train()``, ``.to()`` or ``.half()`` change the matcher's copy, never the
caller's model. The matching defaults are ``mind_engine.match``'s (``mind_engine.defaults``).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..api import match
from ..checks import (check_integer, check_levels, check_model, check_radius, check_real, check_refine, check_stride,
                      check_tier)
from ..defaults import LEVELS, RADIUS, REFINE, STRIDE
from ..weights import is_checkpoint_path, load_model, names_default


class MindMatcher(nn.Module):
    """kornia-LoFTR-style matcher. ``model``: a MindNet (copied), a checkpoint path or "default"
    (None: the bundled model); ``stride``: query grid spacing; ``radius``: search radius (None:
    whole image); ``top``: keep the best ``top`` matches per pair (None: all); ``min_score``: drop
    matches scoring below it; ``tier``: the engine tier; ``levels``: pyramid levels ("auto": coarse
    to fine, as deep as the radius needs; 1: one scale; ``mind_engine.match``); ``refine``: the
    refinement stage ("lk", "peak", "none"; ``mind_engine.refinement``; with ``top``, matches that
    failed its check come last). Each is checked here (``mind_engine.checks``)."""

    def __init__(self, model: nn.Module | str | None = None, stride: int = STRIDE, radius: int | None = RADIUS,
                 top: int | None = None, min_score: float = 0.0, tier: str = "auto", levels: int | str = LEVELS,
                 refine: str = REFINE):
        super().__init__()
        self.stride, self.radius = check_stride(stride), check_radius(radius)
        self.top, self.min_score = check_integer(top, "top", 0, none=True), check_real(min_score, "min_score")
        self.tier, self.levels = check_tier(tier, "torch")[0], check_levels(levels)
        self.refine = check_refine(refine)
        if names_default(model) or is_checkpoint_path(model):
            self.model = load_model(model, device="cpu")
        else:
            check_model(model)
            self.model = copy.deepcopy(model)

    def forward(self, data: dict) -> dict:
        if not isinstance(data, dict):
            raise TypeError(f"MindMatcher takes a dict with 'image0' and 'image1' (B x C x H x W), got "
                            f"{type(data).__name__}")
        for key in ("image0", "image1"):
            if key not in data:
                raise KeyError(f"MindMatcher takes a dict with 'image0' and 'image1' (B x C x H x W); {key!r} is missing")
        im0, im1 = data["image0"], data["image1"]
        if not (isinstance(im0, torch.Tensor) and isinstance(im1, torch.Tensor)) or im0.dim() != 4 \
                or im0.shape[0] != im1.shape[0]:
            raise ValueError(f"image0 and image1 must be B x C x H x W tensors with the same B, got "
                             f"{getattr(im0, 'shape', type(im0))} and {getattr(im1, 'shape', type(im1))}")
        out = {"keypoints0": [], "keypoints1": [], "confidence": [], "batch_indexes": []}
        for b in range(im0.shape[0]):
            m = match(im0[b], im1[b], stride=self.stride, radius=self.radius, model=self.model, tier=self.tier,
                      levels=self.levels, refine=self.refine)
            m = m[m.score >= self.min_score]
            if self.top is not None:
                m = m.top(self.top)
            out["keypoints0"].append(torch.from_numpy(m.pts1))
            out["keypoints1"].append(torch.from_numpy(m.pts3))
            out["confidence"].append(torch.from_numpy(m.score))
            out["batch_indexes"].append(torch.full((len(m),), b, dtype=torch.long))
        empty = {"keypoints0": torch.zeros(0, 2), "keypoints1": torch.zeros(0, 2), "confidence": torch.zeros(0),
                 "batch_indexes": torch.zeros(0, dtype=torch.long)}
        return {k: (torch.cat(v) if v else empty[k]).to(im0.device) for k, v in out.items()}
