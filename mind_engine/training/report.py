"""What a run tells its user, on stderr (rank 0 only): one start-up summary before the first
step (the data, the split, the mixture, the network, where it starts, the optimiser, the device),
one line of measured speed after the first steps, the validation lines, and ``--log``'s JSON lines.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..data.video import split_index
from ..progress import progress
from ..safe_write import append_line
from .recipe import RECIPE, scaled

SPEED_STEPS = 10  # steps timed for the speed line (the first step, which warms up, not among them)
MAX_CLIPS_LISTED = 4


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _clips_line(data, val_fraction: float) -> str:
    parts = []
    for c in data.clips[:MAX_CLIPS_LISTED]:
        cut = split_index(len(c), val_fraction)
        parts.append(f"{c.name} ({len(c)} frames of {c.frames.shape[2]}x{c.frames.shape[1]}, "
                     f"{cut} for training, {len(c) - cut} held out)")
    more = len(data.clips) - MAX_CLIPS_LISTED
    tail = f", and {more} more" if more > 0 else ""
    return f"{len(data.clips)} clip{_s(len(data.clips))}: " + ", ".join(parts) + tail


def _split_line(args, data) -> str:
    train = ", ".join(f"gap {g}: {n}" for g, n in data.train_video.triplet_counts().items())
    held = data.val_video.triplet_counts()[args.val_gap]
    return (f"the last {_pct(args.val_fraction)} of each clip's frames held out; training triplets {train}; "
            f"validation: {len(data.val[0])} fixed triplets at gap {args.val_gap} (of {held})")


def _mix_line(args) -> str:
    parts = []
    if args.warp > 0:
        log = f", {_pct(args.warp_log_share)} of them log-uniform from 0.25 px" if args.warp_log_share > 0 else ""
        layers = f", up to {args.warp_layers} layers" if args.warp_layers > 0 else ""
        residual = f", {_pct(args.warp_residual)} resampled as the pyramid sees them" if args.warp_residual > 0 else ""
        parts.append(f"{_pct(args.warp)} moved stills (--warp, up to {args.warp_max_motion:g} px{log}{layers}{residual})")
    if args.synthetic > 0:
        parts.append(f"{_pct(args.synthetic)} synthetic motion (--synthetic, up to {args.max_motion:g} px)")
    if args.layered > 0:
        parts.append(f"{_pct(args.layered)} layered scenes (--layered, up to {args.layered_max_motion:g} px)")
    video = 1 - args.warp - args.synthetic - args.layered
    if video > 0:
        static = "" if args.static_keep >= 1 else f", {_pct(args.static_keep)} of near-static crops kept (--static-keep)"
        parts.append(f"{_pct(video)} video{static}")
    return ", ".join(parts)


def _start_line(args, start: str | None) -> str:
    if start is not None:
        return start
    if args.init is None:
        return f"Xavier init, seed {args.seed}"
    from ..weights import DEFAULT_WEIGHTS

    same = Path(args.init).resolve() == DEFAULT_WEIGHTS.resolve()
    return f"the bundled default model ({args.init})" if same else f"the weights of {args.init}"


def _scaled_note(args, key: str) -> str:
    """" (scaled to --steps)" where the recipe's value of ``key`` was lowered for a short run."""
    lowered = getattr(args, key) == scaled(key, args.steps) != RECIPE[key]
    return " (the recipe's, scaled to --steps)" if lowered else ""


def _optimiser_line(args) -> str:
    if args.schedule == "cosine":
        sched = (f"cosine: lr {args.lr:g}, warm-up {args.warmup} steps{_scaled_note(args, 'warmup')}, held to "
                 f"{_pct(args.hold)} of the steps, then down to {args.min_lr:g}")
    else:
        sched = (f"plateau: lr {args.lr:g}, x{args.lr_factor:g} after {args.lr_patience} validations without "
                 f"improvement, down to {args.min_lr:g}")
    clip = "no clipping" if args.clip_grad is None else f"gradient norm clipped to {args.clip_grad:g}"
    return f"Adam, {sched}; {clip}; Charbonnier eps {args.eps:g} (pixel values in [0, 1])"


def checks_line(args) -> str:
    """When matching is checked and what chooses ``best.safetensors`` (``--match-val-every``)."""
    if args.match_val_every <= 0:
        return "none (--match-val-every 0): no best.safetensors"
    w, h = args.match_val_size
    what = "the motion probe" if args.select == "probe" else "matching Accuracy@10"
    return (f"matching on {args.match_val_pairs} layered pair{_s(args.match_val_pairs)} ({w}x{h}, one scale) at the "
            f"start, every {args.match_val_every} steps{_scaled_note(args, 'match_val_every')} and at the end; "
            f"best.safetensors chosen by {what}")


def startup_summary(args, data, state, device, amp: bool, threads: int, world: int, start: str | None) -> str:
    """The summary block printed once before the first step."""
    model = state.model
    params = sum(p.numel() for p in model.parameters())
    cfg = model.config
    head = " (+ a training-only motion head)" if state.train_net.motion_head is not None else ""
    ranks = f" x {world} ranks" if world > 1 else ""
    lines = [
        "mind-engine train:",
        f"  data       {_clips_line(data, args.val_fraction)}",
        f"  split      {_split_line(args, data)}",
        f"  mixture    {_mix_line(args)}",
        f"  crops      {args.size[0]}x{args.size[1]}, batch {args.batch_size}{ranks}",
        f"  network    {params:,} parameters{head}; encoder {','.join(map(str, cfg.encoder))}, decoder "
        f"{','.join(map(str, cfg.decoder))}, skips {','.join(map(str, cfg.skips)) or 'none'}",
        f"  start      {_start_line(args, start)}",
        f"  optimiser  {_optimiser_line(args)}",
        f"  steps      {state.step} -> {args.steps}" + (f", stopping at {args.stop_at}" if args.stop_at is not None
                                                       else ""),
        f"  checks     {checks_line(args)}",
        f"  device     {device}, {threads} thread{_s(threads)}, bf16 autocast {'on' if amp else 'off'}",
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def speed_line(steps: int, seconds: float, left: int, end: int) -> str:
    """The measured rate and what it means for the ``left`` steps to step ``end`` (training time only)."""
    rate = steps / seconds if seconds > 0 else float("inf")
    line = f"speed: {rate:.2f} steps/s ({seconds / steps:.2f} s/step, measured over {steps} step{_s(steps)})"
    if left > 0:
        line += (f"; the {left} step{_s(left)} left, to step {end}, take about "
                 f"{_duration(left / rate)} of training (validation and checkpoint choice add to it)")
    return line


class Reporter:
    """Lines to stderr (through the progress bar when there is one) and JSON lines to ``--log``,
    from rank 0 only; ``timed`` collects the first steps' times for the speed line."""

    def __init__(self, args, rank: int):
        self.args, self.rank = args, rank
        self.bar = None
        self.times: list[float] = []
        self.speed_said = False

    def say(self, msg: str) -> None:
        if self.rank == 0:
            (self.bar.write(msg, file=sys.stderr) if self.bar is not None else print(msg, file=sys.stderr))

    def log(self, rec: dict) -> None:
        if self.rank == 0 and self.args.log:
            append_line(self.args.log, json.dumps(rec))

    def open_bar(self, step: int) -> None:
        if self.rank == 0 and not self.args.no_progress:  # a bar on a terminal, lines in a log
            self.bar = progress(total=self.args.steps, initial=step, desc="train", unit="step", show=True)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def timed(self, seconds: float, left: int, end: int) -> None:
        """One step's training time; after the first step and ``SPEED_STEPS`` more (or at the last
        step of a shorter run), the speed line."""
        if self.speed_said:
            return
        self.times.append(seconds)
        timed = self.times[1:] or self.times
        if len(timed) >= SPEED_STEPS or left == 0:
            self.say(speed_line(len(timed), sum(timed), left, end))
            self.speed_said = True
