"""Learning-rate schedules: the paper's plateau drops, or warm-up, a long hold and a cosine tail.

The blend is the easy optimum of frame interpolation; the recipes that escape it hold the
learning rate high for most of the run. ``ReduceLROnPlateau`` with a short patience lowered
run C's rate to its floor by step 4000 (MODEL_CARD.md), so ``cosine`` never drops early: a linear
warm-up over ``warmup`` steps (the first steps of Adam from Xavier init are the unstable ones),
the full rate until ``hold`` of the run, then a half cosine down to ``min_lr`` at ``steps``.
"""
from __future__ import annotations

import math

import torch


def warmup_hold_cosine(step: int, steps: int, warmup: int, hold: float, floor: float) -> float:
    """The factor on the base rate at ``step`` (0-based): ``floor`` is min_lr / lr."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    start = hold * steps
    if step < start or steps <= start:
        return 1.0
    t = min(1.0, (step - start) / (steps - start))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


class Schedule:
    """One interface over both schedules: ``after_step`` every optimiser step, ``after_validation``
    with the validation loss; ``state_dict``/``load_state_dict`` for an exact resume."""

    def __init__(self, optimizer, kind: str, steps: int, lr: float, min_lr: float, warmup: int = 0,
                 hold: float = 0.8, factor: float = 0.5, patience: int = 4):
        if kind not in ("plateau", "cosine"):
            raise ValueError(f"--schedule must be 'plateau' or 'cosine', got {kind!r}")
        self.kind = kind
        if kind == "plateau":
            self.impl = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=factor,
                                                                   patience=patience, min_lr=min_lr)
        else:
            floor = min(1.0, min_lr / lr) if lr > 0 else 1.0
            self.impl = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s: warmup_hold_cosine(s, steps, warmup, hold, floor))

    def after_step(self) -> None:
        if self.kind == "cosine":
            self.impl.step()

    def after_validation(self, val_loss: float) -> None:
        if self.kind == "plateau":
            self.impl.step(val_loss)

    def state_dict(self) -> dict:
        return self.impl.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.impl.load_state_dict(state)
