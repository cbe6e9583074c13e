"""What a checkpoint holds and a resume restores: the network (and the training-only motion head),
the optimiser and its schedule, the step, the histories, the loss windows and the data generator.

Saved and restored exactly, so the step after a resume is bit-identical to the same step of an
uninterrupted run (same device, same thread count); ``checkpoint`` verifies the file on both sides.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..model import MindConfig
from .checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .motion_head import MotionHead, TrainingNet
from .schedule import Schedule


def _records(items) -> list[dict]:
    """History records as dicts (checkpoints before 0.3 stored them as JSON strings)."""
    return [json.loads(r) if isinstance(r, str) else dict(r) for r in items]


class TrainingState:
    """The state of one run on ``device``: built fresh from the options, then maybe restored."""

    def __init__(self, model, args, device, memory_format, rank: int = 0):
        self.model = model
        head = MotionHead(model.config.decoder[-1]) if args.aux_motion > 0 else None
        self.train_net = TrainingNet(model, head).to(device, memory_format=memory_format)
        self.optimizer = torch.optim.Adam(self.train_net.parameters(), lr=args.lr, betas=(0.9, 0.999))
        self.schedule = Schedule(self.optimizer, args.schedule, args.steps, args.lr, args.min_lr, args.warmup,
                                 args.hold, args.lr_factor, args.lr_patience)
        self.data_gen = torch.Generator().manual_seed(args.seed + 1_000_003 * rank)
        self.rank = rank
        self.step, self.train_seconds = 0, 0.0
        self.history: list[dict] = []  # validation records
        self.match_history: list[dict] = []  # checkpoint-selection records (``validation``)
        self.window: list[float] = []  # training losses since the last validation
        self.image_window: list[list[float]] = []  # (image loss, frame average's loss) on the same batches

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def to_checkpoint(self, args, data_all: list | None = None) -> dict:
        """Everything a resume needs, as tensors and plain types (``data_all``: every rank's data
        generator state under DDP)."""
        state = {"config": self.model.config.to_dict(), "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.schedule.state_dict(),
                 "step": self.step, "history": self.history, "window": self.window, "image_window": self.image_window,
                 "train_seconds": self.train_seconds, "match_history": self.match_history,
                 "args": json.dumps(vars(args), default=str), "rng": rng_state(self.data_gen, data_all)}
        if self.train_net.motion_head is not None:
            state["motion_head"] = self.train_net.motion_head.state_dict()
        return state

    def save(self, path: Path, args, data_all: list | None = None) -> None:
        save_checkpoint(path, self.to_checkpoint(args, data_all))

    def restore(self, src: Path) -> None:
        """Load ``src`` (verified by ``load_checkpoint``) into this state; a checkpoint of another
        network or without the motion head this run trains is refused in one line."""
        ck = load_checkpoint(src)
        config = MindConfig(**ck["config"])
        if config != self.model.config:
            raise CheckpointError(f"{src} was trained with {config.to_dict()}, not {self.model.config.to_dict()}; "
                                  f"pass the same --widths and --skips to resume")
        if self.train_net.motion_head is not None and "motion_head" not in ck:
            raise CheckpointError(f"{src} was trained without --aux-motion; resume it without that option")
        self.model.load_state_dict(ck["model"])
        if self.train_net.motion_head is not None:
            self.train_net.motion_head.load_state_dict(ck["motion_head"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.schedule.load_state_dict(ck["scheduler"])
        self.step, self.history = int(ck["step"]), _records(ck["history"])
        self.train_seconds = float(ck.get("train_seconds", 0.0))
        self.window = [float(v) for v in ck.get("window", [])]
        self.image_window = [[float(a), float(b)] for a, b in ck.get("image_window", [])]
        self.match_history = _records(ck.get("match_history", []))
        set_rng_state(ck["rng"], self.data_gen, self.rank)
