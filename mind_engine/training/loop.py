"""Self-supervised training of MindNet on triplets: ``mind-engine train``.

The paper's recipe: Charbonnier loss sqrt(x^2 + eps^2) with eps = 0.1, Adam (betas 0.9, 0.999),
lr 1e-3 lowered on plateau of the validation loss, Xavier init, triplets forward and backward in
time and flipped (``augment``). Beside it (``--schedule cosine``, ``--warp``, ``--aux-motion``,
``--grad-loss``): the recipe that escapes the blend (MODEL_CARD.md).

Checkpoints (``--ckpt-dir``/last.pt, ``checkpoint``) hold the model (and the training-only motion
head), optimiser, schedule, step, histories and every random state, so ``--resume`` continues
exactly where a killed run left off: the next step after a resume is bit-identical to the same
step of an uninterrupted run (same device, same thread count). ``--match-val-every`` also keeps
``best.safetensors``, chosen by matching accuracy on validation pairs with known motion, or by
the motion probe with ``--select probe`` (``validation``).

Launched by ``torchrun`` (WORLD_SIZE > 1) it trains with DistributedDataParallel; each rank
draws its own batches (generator seeded with seed + 1_000_003 * rank).
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..checks import check_device, check_integer
from ..data.layered import LayeredMotion
from ..data.layered_warp import LayeredWarp
from ..data.mixture import Mixture
from ..data.residual import ResidualWarp
from ..data.sources import load_clips
from ..data.static import StaticRule
from ..data.synthetic import SyntheticMotion
from ..data.video import VideoTriplets
from ..data.warp import AffineMotion
from ..model import MindConfig, MindNet
from .checkpoint import CKPT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .cli import default_num_threads, parse_args
from .losses import charbonnier, gradient_loss, motion_loss
from .motion_head import MotionHead, TrainingNet
from .schedule import Schedule
from .validation import BestCheckpoint, validation_pairs

__all__ = ["charbonnier", "main", "build_model", "validate"]


@torch.no_grad()
def validate(model, val, device, eps: float, amp: bool, chunk: int = 8) -> dict:
    """Charbonnier loss and mean interpolation error (IE, Middlebury's definition, 0-255 units)
    over the fixed held-out triplets; also the frame-average baseline's mean IE for reference."""
    was_training = model.training
    model.eval()
    i1s, i2s, i3s = val
    loss_sum, se_sum, se_avg, n = 0.0, 0.0, 0.0, 0
    for k in range(0, len(i1s), chunk):
        i1, i2, i3 = (t[k:k + chunk].to(device) for t in (i1s, i2s, i3s))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(i1, i3)
        out = out.float().clamp(0, 1)
        loss_sum += float(charbonnier(out, i2, eps)) * i1.shape[0]
        # IE per image as Middlebury defines it (L2 norm of the RGB difference, RMS over pixels)
        se_sum += float(((out - i2) * 255).pow(2).sum(1).mean(dim=(1, 2)).sqrt().sum())
        se_avg += float((((i1 + i3) / 2 - i2) * 255).pow(2).sum(1).mean(dim=(1, 2)).sqrt().sum())
        n += i1.shape[0]
    model.train(was_training)
    return {"val_loss": loss_sum / n, "val_ie": se_sum / n, "val_ie_average": se_avg / n}


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


def _device(args, world: int, local_rank: int):
    """The device, with torch's thread count set (split between CPU ranks) and whether bf16
    autocast is on (``amp_enabled``)."""
    if args.device is not None:
        device = check_device(args.device, "--device")
    elif torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    threads = check_integer(args.threads, "--threads", 1, none=True) or default_num_threads()
    if device.type == "cpu" and world > 1:
        threads = max(1, threads // world)
    torch.set_num_threads(threads)
    return device, amp_enabled(args.amp, device)


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX), where oneDNN runs bf16
    convolutions faster than fp32 ones; elsewhere bf16 is emulated and slower."""
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, name, lambda: False)()) for name in
               ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def amp_enabled(mode: str, device: torch.device) -> bool:
    """``--amp``: bf16 autocast on a GPU, and on a CPU with bf16 units (``auto``); ``on`` forces it
    on any device, ``off`` never."""
    if mode == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    return mode == "on"


def _data(args, device):
    """The clips, the training sampler and the fixed validation triplets (held-out split fixed by
    --val-fraction, see ``video``)."""
    gaps = tuple(int(g) for g in str(args.gaps).split(","))
    clips = load_clips(args.data, args.max_side)
    train_set = VideoTriplets(clips, args.size, "train", args.val_fraction, gaps=gaps, augment=True,
                              static=StaticRule(keep=args.static_keep))
    val_set = VideoTriplets(clips, args.size, "val", args.val_fraction, gaps=(args.val_gap,), augment=False)
    synthetic = SyntheticMotion(args.size, "train", max_motion=args.max_motion) if args.synthetic > 0 else None
    layered = LayeredMotion(args.size, "train", args.layered_max_motion, clips=clips,
                            val_fraction=args.val_fraction) if args.layered > 0 else None
    warp = None
    if args.warp > 0:
        kind, extra = AffineMotion, {}
        if args.warp_layers > 0:
            kind, extra = LayeredWarp, {"max_layers": args.warp_layers}
        if args.warp_residual > 0:
            if args.warp_layers > 0:
                raise SystemExit("--warp-residual and --warp-layers cannot be combined")
            kind, extra = ResidualWarp, {"share": args.warp_residual}
        warp = kind(args.size, "train", args.warp_max_motion, args.warp_linear, device=device, noise=args.warp_noise,
                    log_share=args.warp_log_share, **extra)
    mixture = Mixture(train_set, synthetic, args.synthetic, layered, args.layered, warp, args.warp)
    return clips, gaps, mixture, val_set.fixed(args.val_size, seed=12345)


def build_model(args) -> MindNet:
    """Xavier-initialised from --seed, or the weights of --init (fine-tuning)."""
    torch.manual_seed(args.seed)
    np.random.seed(args.seed % (2 ** 32))
    random.seed(args.seed)
    enc, dec = args.widths
    model = MindNet(MindConfig(encoder=enc, decoder=dec, skips=args.skips))
    model.reset_parameters(torch.Generator().manual_seed(args.seed))  # Xavier (paper)
    if args.init is not None:
        from ..weights import model_from_checkpoint

        start = model_from_checkpoint(args.init)
        if start.config != model.config:
            raise SystemExit(f"--init {args.init} has the configuration {start.config.to_dict()}, not "
                             f"{model.config.to_dict()}; pass the same --widths and --skips")
        model.load_state_dict(start.state_dict())
    return model


def _records(items) -> list[dict]:
    """History records as dicts (checkpoints before 0.3 stored them as JSON strings)."""
    return [json.loads(r) if isinstance(r, str) else dict(r) for r in items]


class Trainer:
    """One training run: what it trains, what a checkpoint holds and a resume restores, and the
    steps of the loop (``run``), each a method."""

    def __init__(self, args):
        self.args = args
        self.world, self.rank, local_rank = _dist_info()
        self.device, self.amp = _device(args, self.world, local_rank)
        if self.world > 1:
            import torch.distributed as dist
            from torch.distributed.nn import functional as _  # noqa: F401  imported before the group exists
            # (with ``close``'s ``del``: the remedy found for a gloo rank aborting (SIGABRT) at shutdown)

            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.clips, self.gaps, self.sampler, self.val = _data(args, self.device)
        self.model = build_model(args).to(self.device)
        head = MotionHead(self.model.config.decoder[-1]) if args.aux_motion > 0 else None
        # channels_last lets oneDNN's bf16 convolutions run in their native layout (about 10 % per
        # CPU step on top of autocast's 1.5x, measured on an AVX512-BF16 EPYC)
        self.memory_format = torch.channels_last if self.amp and self.device.type == "cpu" else torch.contiguous_format
        self.train_net = TrainingNet(self.model, head).to(self.device, memory_format=self.memory_format)
        self.optimizer = torch.optim.Adam(self.train_net.parameters(), lr=args.lr, betas=(0.9, 0.999))
        self.schedule = Schedule(self.optimizer, args.schedule, args.steps, args.lr, args.min_lr, args.warmup,
                                 args.hold, args.lr_factor, args.lr_patience)
        self.data_gen = torch.Generator().manual_seed(args.seed + 1_000_003 * self.rank)
        self.step, self.train_seconds = 0, 0.0
        self.history: list[dict] = []  # validation records
        self.match_history: list[dict] = []  # checkpoint-selection records (``validation``)
        self.window: list[float] = []  # training losses since the last validation
        self.image_window: list[list[float]] = []  # (image loss, frame average's loss) on the same batches
        self.losses: list[float] = []  # this process's losses, step by step
        self.ckpt_path = Path(args.ckpt_dir) / CKPT_NAME
        self.bar = None
        self.net = self.train_net
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(self.train_net, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    # -- state ---------------------------------------------------------------------------------

    def resume(self) -> None:
        """--resume: restore last.pt (or the given checkpoint) when there is one."""
        args = self.args
        if args.resume is None:
            return
        src = self.ckpt_path if args.resume == "auto" else Path(args.resume)
        if not src.is_file():
            if args.resume != "auto":
                raise SystemExit(f"--resume {src}: no such checkpoint")
            self.say(f"no checkpoint at {src}; starting at step 0")
            return
        ck = load_checkpoint(src)
        config = MindConfig(**ck["config"])
        if config != self.model.config:
            raise SystemExit(f"{src} was trained with {config.to_dict()}, not {self.model.config.to_dict()}; "
                             f"pass the same --widths and --skips to resume")
        self.model.load_state_dict(ck["model"])
        if self.train_net.motion_head is not None:
            if "motion_head" not in ck:
                raise SystemExit(f"{src} was trained without --aux-motion; resume it without that option")
            self.train_net.motion_head.load_state_dict(ck["motion_head"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.schedule.load_state_dict(ck["scheduler"])
        self.step, self.history = int(ck["step"]), _records(ck["history"])
        self.train_seconds = float(ck.get("train_seconds", 0.0))
        self.window = [float(v) for v in ck.get("window", [])]
        self.image_window = [[float(a), float(b)] for a, b in ck.get("image_window", [])]
        self.match_history = _records(ck.get("match_history", []))
        set_rng_state(ck["rng"], self.data_gen, self.rank)
        self.say(f"resumed from {src} at step {self.step}")

    def checkpoint(self) -> None:
        data_all = None
        if self.world > 1:
            import torch.distributed as dist

            data_all = [None] * self.world
            dist.all_gather_object(data_all, self.data_gen.get_state())
        if self.rank != 0:
            return
        state = {"config": self.model.config.to_dict(), "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.schedule.state_dict(),
                 "step": self.step, "history": self.history, "window": self.window, "image_window": self.image_window,
                 "train_seconds": self.train_seconds, "match_history": self.match_history,
                 "args": json.dumps(vars(self.args), default=str), "rng": rng_state(self.data_gen, data_all)}
        if self.train_net.motion_head is not None:
            state["motion_head"] = self.train_net.motion_head.state_dict()
        save_checkpoint(self.ckpt_path, state)

    # -- reporting -----------------------------------------------------------------------------

    def say(self, msg: str) -> None:
        if self.rank == 0:
            (self.bar.write(msg) if self.bar is not None else print(msg, file=sys.stderr))

    def log(self, rec: dict) -> None:
        if self.rank == 0 and self.args.log:
            with open(self.args.log, "a") as f:
                f.write(json.dumps(rec) + "\n")

    # -- the loop ------------------------------------------------------------------------------

    def train_step(self) -> float:
        args = self.args
        (i1, i2, i3), truth = self.sampler.batch(args.batch_size, self.data_gen, self.device)
        i1, i3 = (x.contiguous(memory_format=self.memory_format) for x in (i1, i3))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out, motion = self.net(i1, i3)
        loss = charbonnier(out, i2, args.eps)
        with torch.no_grad():  # the blend to beat, on the same batch
            self.image_window.append([float(loss), float(charbonnier((i1 + i3) / 2, i2, args.eps))])
        if args.grad_loss > 0:
            loss = loss + args.grad_loss * gradient_loss(out, i2)
        if motion is not None and truth is not None:
            k = truth["motion"].shape[0]
            scale = max(1.0, args.warp_max_motion)
            loss = loss + args.aux_motion * motion_loss(motion[:k], truth["motion"], truth["valid"], scale)
        elif motion is not None:
            loss = loss + 0.0 * motion.sum()  # no truth in this batch: the head still joins the graph (DDP)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.train_net.parameters(), args.clip_grad)
        self.optimizer.step()
        self.schedule.after_step()
        self.step += 1
        return float(loss.detach())

    def validate(self) -> None:
        v = validate(self.model, self.val, self.device, self.args.eps, self.amp)
        self.schedule.after_validation(v["val_loss"])
        image, average = np.mean(self.image_window, axis=0) if self.image_window else (float("nan"),) * 2
        rec = {"step": self.step, "train_loss": float(np.mean(self.window)), "train_image_loss": float(image),
               "train_average_loss": float(average), **v,
               "lr": self.optimizer.param_groups[0]["lr"], "train_seconds": round(self.train_seconds, 1)}
        self.history.append(rec)
        self.window, self.image_window = [], []
        self.say(f"step {self.step}: train {rec['train_loss']:.4f} (image {image:.4f}, frame average {average:.4f}) val {v['val_loss']:.4f} "
                 f"IE {v['val_ie']:.2f} (frame average {v['val_ie_average']:.2f}) lr {rec['lr']:.1e}")
        self.log(rec)

    def select(self, keeper: BestCheckpoint) -> None:
        rec = keeper(self.model, self.step, {"train_seconds": round(self.train_seconds, 1),
                                             "args": json.dumps(vars(self.args), default=str)})
        self.match_history.append(rec)
        self.say(keeper.describe(rec))
        self.log(rec)

    def keeper(self) -> BestCheckpoint | None:
        """Checkpoint choice (rank 0 only), when --match-val-every asks for it."""
        args = self.args
        if args.match_val_every <= 0 or self.rank != 0:
            return None
        pairs = validation_pairs(args.match_val_pairs, args.match_val_size, args.layered_max_motion, self.clips,
                                 args.val_fraction)
        return BestCheckpoint(pairs, args.ckpt_dir, self.match_history, probe=args.select == "probe")

    def run(self) -> None:
        args = self.args
        keeper = self.keeper()
        if self.rank == 0 and not args.no_progress:
            from tqdm import tqdm

            self.bar = tqdm(total=args.steps, initial=self.step, desc="train", dynamic_ncols=True, file=sys.stderr)
        if keeper is not None and self.step == 0:
            self.select(keeper)  # the starting weights (--init): a run that never beats them keeps them as best
        self.train_net.train()
        started = t_last = time.perf_counter()
        end = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
        while self.step < end and (args.max_seconds is None or time.perf_counter() - started < args.max_seconds):
            lv = self.train_step()
            self.losses.append(lv)
            self.window.append(lv)
            now = time.perf_counter()
            self.train_seconds += now - t_last
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(loss=f"{lv:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.1e}")
            if args.val_every > 0 and self.step % args.val_every == 0:
                self.validate()
            if keeper is not None and self.step % args.match_val_every == 0:
                self.select(keeper)
            if args.ckpt_every > 0 and self.step % args.ckpt_every == 0:
                self.checkpoint()
            t_last = time.perf_counter()  # evaluation and checkpoints are not training time
        if args.ckpt_every > 0 and self.step % args.ckpt_every != 0:
            self.checkpoint()  # wherever the run stops (--steps, --stop-at, --max-seconds), it can resume there
        if self.bar is not None:
            self.bar.close()

    # -- the end -------------------------------------------------------------------------------

    def last_validation(self) -> dict | None:
        """The last validation record; one more (a report only: not in the history, no schedule
        step, so resuming is unaffected) when the run ended between validations."""
        last = self.history[-1] if self.history else None
        if self.args.val_every > 0 and (last is None or last["step"] != self.step):
            last = {"step": self.step, "train_loss": float(np.mean(self.window)) if self.window else float("nan"),
                    **validate(self.model, self.val, self.device, self.args.eps, self.amp),
                    "lr": self.optimizer.param_groups[0]["lr"], "train_seconds": round(self.train_seconds, 1)}
            self.say(f"final step {self.step}: val {last['val_loss']:.4f} IE {last['val_ie']:.2f} "
                     f"(frame average {last['val_ie_average']:.2f})")
        return last

    def export(self, last_val: dict | None) -> None:
        """--export: the MindNet weights alone (never the motion head) as safetensors."""
        from ..weights import save_model

        args = self.args
        meta = {"steps": self.step, "train_seconds": round(self.train_seconds, 1),
                "size": f"{args.size[0]}x{args.size[1]}", "batch_size": args.batch_size,
                "data": [c.name for c in self.clips], "val_fraction": args.val_fraction, "synthetic": args.synthetic,
                "layered": args.layered, "layered_max_motion": args.layered_max_motion, "warp": args.warp,
                "warp_max_motion": args.warp_max_motion, "warp_linear": args.warp_linear, "warp_layers": args.warp_layers,
                "warp_log_share": args.warp_log_share, "warp_residual": args.warp_residual,
                "static_keep": args.static_keep,
                "gaps": list(self.gaps), "val_gap": args.val_gap, "seed": args.seed, "device": str(self.device),
                "world_size": self.world, "last_validation": last_val}
        save_model(self.model.cpu() if self.device.type != "cpu" else self.model, args.export, extra_metadata=meta)
        print(f"exported {args.export}", file=sys.stderr)

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
            del self.net  # the DDP wrapper (its reducer holds the group) goes before the group does
            dist.destroy_process_group()


def main(argv=None) -> dict:
    """Train; returns a summary dict (final step, losses per step of this run, last validation,
    the model, the histories)."""
    trainer = Trainer(parse_args(argv))
    trainer.resume()
    trainer.run()
    last_val = trainer.last_validation()
    if trainer.args.export and trainer.rank == 0:
        trainer.export(last_val)
    trainer.close()
    return {"step": trainer.step, "losses": trainer.losses, "last_validation": last_val, "model": trainer.model,
            "history": trainer.history, "train_seconds": trainer.train_seconds,
            "match_history": trainer.match_history}
