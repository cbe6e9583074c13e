"""Self-supervised training of MindNet on video triplets: ``mind-engine train``.

The paper's recipe: Charbonnier loss sqrt(x^2 + eps^2) with eps = 0.1, Adam (betas 0.9, 0.999),
lr 1e-3 lowered on plateau of the validation loss, Xavier init, triplets forward and backward in
time and flipped (``augment``).

Checkpoints (``--ckpt-dir``/last.pt, ``checkpoint``) hold the model, optimiser, scheduler, step,
validation history and every random state, so ``--resume`` continues exactly where a killed run
left off: the next step after a resume is bit-identical to the same step of an uninterrupted run
(same device, same thread count). ``--match-val-every`` also keeps ``best.safetensors``, the
weights of the best matching accuracy on validation pairs with known motion (``validation``).

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
from ..model import MindConfig, MindNet
from .checkpoint import CKPT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .cli import default_num_threads, parse_args
from ..data.layered import LayeredMotion
from ..data.mixture import Mixture
from ..data.sources import load_clips
from ..data.synthetic import SyntheticMotion
from .validation import BestCheckpoint, validation_pairs
from ..data.video import VideoTriplets


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """Mean Charbonnier penalty sqrt((pred - target)^2 + eps^2) over all elements (the paper's
    loss, eps = 0.1; pixels in [0, 1])."""
    d = pred.float() - target.float()
    return torch.sqrt(d * d + eps * eps).mean()


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
    autocast is on (GPU only)."""
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
    if args.amp == "on" and device.type != "cuda":
        print("note: --amp on is ignored on CPU (bf16 autocast is used on GPU only)", file=sys.stderr)
    return device, device.type == "cuda" and args.amp != "off"


def _data(args):
    """The clips, the training sampler and the fixed validation triplets (held-out split fixed by
    --val-fraction, see ``video``)."""
    gaps = tuple(int(g) for g in str(args.gaps).split(","))
    clips = load_clips(args.data, args.max_side)
    train_set = VideoTriplets(clips, args.size, "train", args.val_fraction, gaps=gaps, augment=True)
    val_set = VideoTriplets(clips, args.size, "val", args.val_fraction, gaps=(args.val_gap,), augment=False)
    synthetic = SyntheticMotion(args.size, "train", max_motion=args.max_motion) if args.synthetic > 0 else None
    layered = LayeredMotion(args.size, "train", args.layered_max_motion, clips=clips,
                            val_fraction=args.val_fraction) if args.layered > 0 else None
    mixture = Mixture(train_set, synthetic, args.synthetic, layered, args.layered)
    return clips, gaps, mixture, val_set.fixed(args.val_size, seed=12345)


def _model(args) -> MindNet:
    """Xavier-initialised from --seed, or the weights of --init (fine-tuning)."""
    torch.manual_seed(args.seed)
    np.random.seed(args.seed % (2 ** 32))
    random.seed(args.seed)
    enc, dec = args.widths
    model = MindNet(MindConfig(encoder=enc, decoder=dec))
    model.reset_parameters(torch.Generator().manual_seed(args.seed))  # Xavier (paper)
    if args.init is not None:
        from ..weights import model_from_checkpoint

        start = model_from_checkpoint(args.init)
        if start.config != model.config:
            raise SystemExit(f"--init {args.init} has widths {start.config.to_dict()}, not {enc}/{dec}; "
                             f"pass the same --widths")
        model.load_state_dict(start.state_dict())
    return model


class Run:
    """One training run's mutable state: what a checkpoint holds and a resume restores."""

    def __init__(self, args, model, optimizer, scheduler, data_gen):
        self.args, self.model, self.optimizer, self.scheduler, self.data_gen = args, model, optimizer, scheduler, data_gen
        self.step, self.history, self.train_seconds = 0, [], 0.0
        self.window: list[float] = []  # training losses since the last validation
        self.match_history: list[str] = []  # matching-accuracy records (``validation``), JSON

    def resume(self, path: Path, rank: int) -> None:
        ck = load_checkpoint(path)
        enc, dec = self.args.widths
        if tuple(ck["config"]["encoder"]) != tuple(enc) or tuple(ck["config"]["decoder"]) != tuple(dec):
            raise SystemExit(f"{path} was trained with widths {ck['config']}, not {enc}/{dec}; "
                             f"pass the same --widths to resume")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.step, self.history = int(ck["step"]), list(ck["history"])
        self.train_seconds = float(ck.get("train_seconds", 0.0))
        self.window = [float(v) for v in ck.get("window", [])]
        self.match_history = list(ck.get("match_history", []))
        set_rng_state(ck["rng"], self.data_gen, rank)

    def save(self, path: Path, data_all=None) -> None:
        save_checkpoint(path, {
            "config": self.model.config.to_dict(), "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "step": self.step,
            "history": self.history, "window": self.window, "train_seconds": self.train_seconds,
            "match_history": self.match_history,
            "args": json.dumps(vars(self.args), default=str), "rng": rng_state(self.data_gen, data_all)})


def main(argv=None) -> dict:
    """Train; returns a summary dict (final step, losses per step of this run, last validation,
    the model)."""
    args = parse_args(argv)
    world, rank, local_rank = _dist_info()
    distributed = world > 1
    device, amp = _device(args, world, local_rank)
    if distributed:
        import torch.distributed as dist
        from torch.distributed.nn import functional as _  # noqa: F401  imported before the group exists
        # (with the ``del net`` below: the remedy found for a gloo rank aborting (SIGABRT) at shutdown)

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    clips, gaps, sampler, val = _data(args)
    model = _model(args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=args.lr_factor,
                                                           patience=args.lr_patience, min_lr=args.min_lr)
    run = Run(args, model, optimizer, scheduler, torch.Generator().manual_seed(args.seed + 1_000_003 * rank))

    ckpt_path = Path(args.ckpt_dir) / CKPT_NAME
    if args.resume is not None:
        src = ckpt_path if args.resume == "auto" else Path(args.resume)
        if src.is_file():
            run.resume(src, rank)
            if rank == 0:
                print(f"resumed from {src} at step {run.step}", file=sys.stderr)
        elif args.resume != "auto":
            raise SystemExit(f"--resume {src}: no such checkpoint")
        elif rank == 0:
            print(f"no checkpoint at {src}; starting at step 0", file=sys.stderr)

    keeper = None  # checkpoint choice by matching accuracy (rank 0 only)
    if args.match_val_every > 0 and rank == 0:
        pairs = validation_pairs(args.match_val_pairs, args.match_val_size, args.layered_max_motion, clips,
                                 args.val_fraction)
        keeper = BestCheckpoint(pairs, args.ckpt_dir, [json.loads(h) for h in run.match_history])

    net = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    def checkpoint():
        data_all = None
        if distributed:
            import torch.distributed as dist

            data_all = [None] * world
            dist.all_gather_object(data_all, run.data_gen.get_state())
        if rank == 0:
            run.save(ckpt_path, data_all)

    def say(msg: str) -> None:
        if rank == 0:
            (bar.write(msg) if bar is not None else print(msg, file=sys.stderr))

    def match_validate() -> None:
        rec = keeper(model, run.step, {"train_seconds": round(run.train_seconds, 1),
                                       "args": json.dumps(vars(args), default=str)})
        run.match_history.append(json.dumps(rec))
        say(f"step {run.step}: matching APE {rec['match_ape']:.2f} Acc@10 {rec['match_acc10']:.3f} "
            f"(best at step {rec['best_step']})")
        if args.log:
            with open(args.log, "a") as f:
                f.write(json.dumps(rec) + "\n")

    losses = []
    bar = None
    if rank == 0 and not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=args.steps, initial=run.step, desc="train", dynamic_ncols=True, file=sys.stderr)
    if keeper is not None and run.step == 0:
        match_validate()  # the starting weights (--init): a run that never beats them keeps them as best
    net.train()
    t_last = time.perf_counter()
    started = time.perf_counter()
    while run.step < args.steps and (args.max_seconds is None or time.perf_counter() - started < args.max_seconds):
        i1, i2, i3 = (t.to(device, non_blocking=True) for t in sampler.batch(args.batch_size, run.data_gen))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = net(i1, i3)
        loss = charbonnier(out, i2, args.eps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
        run.step += 1
        lv = float(loss.detach())
        losses.append(lv)
        run.window.append(lv)
        now = time.perf_counter()
        run.train_seconds += now - t_last
        t_last = now
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{lv:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.1e}")
        if args.val_every > 0 and run.step % args.val_every == 0:
            v = validate(model, val, device, args.eps, amp)
            scheduler.step(v["val_loss"])
            rec = {"step": run.step, "train_loss": float(np.mean(run.window)), **v,
                   "lr": optimizer.param_groups[0]["lr"], "train_seconds": round(run.train_seconds, 1)}
            run.history.append(json.dumps(rec))
            run.window = []
            say(f"step {run.step}: train {rec['train_loss']:.4f} val {v['val_loss']:.4f} "
                f"IE {v['val_ie']:.2f} (frame average {v['val_ie_average']:.2f}) lr {rec['lr']:.1e}")
            if rank == 0 and args.log:
                with open(args.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            t_last = time.perf_counter()
        if keeper is not None and run.step % args.match_val_every == 0:
            match_validate()
            t_last = time.perf_counter()
        if args.ckpt_every > 0 and (run.step % args.ckpt_every == 0 or run.step == args.steps):
            checkpoint()
            t_last = time.perf_counter()
    if bar is not None:
        bar.close()

    last_val = json.loads(run.history[-1]) if run.history else None
    if args.val_every > 0 and (last_val is None or last_val["step"] != run.step):
        # a report only: not in the history and no scheduler step, so resuming is unaffected
        last_val = {"step": run.step, "train_loss": float(np.mean(run.window)) if run.window else float("nan"),
                    **validate(model, val, device, args.eps, amp), "lr": optimizer.param_groups[0]["lr"],
                    "train_seconds": round(run.train_seconds, 1)}
        say(f"final step {run.step}: val {last_val['val_loss']:.4f} IE {last_val['val_ie']:.2f} "
            f"(frame average {last_val['val_ie_average']:.2f})")
    if args.export and rank == 0:
        from ..weights import save_model

        meta = {"steps": run.step, "train_seconds": round(run.train_seconds, 1),
                "size": f"{args.size[0]}x{args.size[1]}", "batch_size": args.batch_size,
                "data": [c.name for c in clips], "val_fraction": args.val_fraction, "synthetic": args.synthetic,
                "layered": args.layered, "layered_max_motion": args.layered_max_motion,
                "gaps": list(gaps), "val_gap": args.val_gap, "seed": args.seed, "device": str(device),
                "world_size": world, "last_validation": last_val}
        save_model(model.cpu() if device.type != "cpu" else model, args.export, extra_metadata=meta)
        print(f"exported {args.export}", file=sys.stderr)
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        del net  # the DDP wrapper (its reducer holds the group) goes before the group does
        dist.destroy_process_group()
    return {"step": run.step, "losses": losses, "last_validation": last_val, "model": model,
            "history": [json.loads(h) for h in run.history], "train_seconds": run.train_seconds,
            "match_history": [json.loads(h) for h in run.match_history]}
