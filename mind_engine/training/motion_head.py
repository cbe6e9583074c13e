"""A training-only motion head: supervision of the decoder's features by exact correspondences.

Synthetic triplets (``mind_engine.data.warp``) come with the true frame 1 -> 3 motion of every
middle-frame pixel. A small head on MindNet's last decoder features predicts it, and its L1 error
joins the loss, so the features are pushed to encode where content moves, which the image head
then needs only to read. The head is not part of MindNet: it lives beside it during training
(``TrainingNet``, saved in training checkpoints) and is never exported, so the shipped network,
the engine and every Jacobian row are exactly those of the plain MindNet.
"""
from __future__ import annotations

import torch
from torch import nn

from ..model import MindNet


class MotionHead(nn.Module):
    """conv 3x3 -> PReLU -> conv 3x3 to 2 channels: the motion in units of ``scale`` px."""

    def __init__(self, channels: int, hidden: int = 32):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.PReLU(hidden),
                                  nn.Conv2d(hidden, 2, 3, padding=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)


class TrainingNet(nn.Module):
    """MindNet and, optionally, its motion head as one module (one DDP wrapper, one optimiser):
    ``forward`` returns (middle frame, motion prediction or None)."""

    def __init__(self, model: MindNet, motion_head: MotionHead | None = None):
        super().__init__()
        self.model, self.motion_head = model, motion_head

    def forward(self, i1: torch.Tensor, i3: torch.Tensor):
        f = self.model.features(i1, i3)
        return self.model.image(f), (self.motion_head(f) if self.motion_head is not None else None)
