"""What a training run is made of, built from its options: the process group's place, the
device (threads, bf16 autocast), the data (clips, the training mixture, the fixed validation
triplets) and the network (Xavier init or ``--init``'s weights)."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from ..checks import check_device
from ..data.layered import LayeredMotion
from ..data.layered_warp import LayeredWarp
from ..data.mixture import Mixture
from ..data.residual import ResidualWarp
from ..data.sources import Clip, load_clips
from ..data.static import StaticRule
from ..data.synthetic import SyntheticMotion
from ..data.video import VideoTriplets
from ..data.warp import AffineMotion
from ..hardware import has_bf16_units
from ..model import MindConfig, MindNet
from .cli import default_num_threads

VAL_SEED = 12345  # the fixed validation triplets' draw


def dist_info() -> tuple[int, int, int]:
    """(world size, rank, local rank) as torchrun sets them (1, 0, 0 without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


def pick_device(args, world: int, local_rank: int) -> tuple[torch.device, bool]:
    """The device, with torch's thread count set (split between CPU ranks), and whether bf16
    autocast is on (``amp_enabled``)."""
    if args.device is not None:
        device = check_device(args.device, "--device")
    elif torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    threads = args.threads or default_num_threads()
    if device.type == "cpu" and world > 1:
        threads = max(1, threads // world)
    torch.set_num_threads(threads)
    return device, amp_enabled(args.amp, device)


def amp_enabled(mode: str, device: torch.device) -> bool:
    """``--amp``: bf16 autocast on a GPU, and on a CPU with bf16 units (``auto``); ``on`` forces it
    on any device, ``off`` never."""
    if mode == "auto":
        return has_bf16_units(device)
    return mode == "on"


@dataclass
class TrainingData:
    """The clips, the training mixture (``sampler``), the fixed validation triplets and, for the
    start-up summary, the video triplets of each split."""

    clips: list[Clip]
    gaps: tuple[int, ...]
    sampler: Mixture
    val: tuple
    train_video: VideoTriplets
    val_video: VideoTriplets


def _warp(args, device):
    """--warp's generator: moved stills, with foreground layers under --warp-layers, a share
    resampled as the pyramid sees them under --warp-residual."""
    if args.warp <= 0:
        return None
    kind, extra = AffineMotion, {}
    if args.warp_layers > 0:
        kind, extra = LayeredWarp, {"max_layers": args.warp_layers}
    elif args.warp_residual > 0:
        kind, extra = ResidualWarp, {"share": args.warp_residual}
    return kind(args.size, "train", args.warp_max_motion, args.warp_linear, device=device, noise=args.warp_noise,
                log_share=args.warp_log_share, **extra)


def build_data(args, device) -> TrainingData:
    """The clips, the training sampler and the fixed validation triplets (held-out split fixed by
    --val-fraction, ``mind_engine.data.video``); a crop larger than the frames is refused there."""
    gaps = tuple(args.gaps)
    clips = load_clips(args.data, args.max_side)
    train_set = VideoTriplets(clips, args.size, "train", args.val_fraction, gaps=gaps, augment=True,
                              static=StaticRule(keep=args.static_keep))
    val_set = VideoTriplets(clips, args.size, "val", args.val_fraction, gaps=(args.val_gap,), augment=False)
    synthetic = SyntheticMotion(args.size, "train", max_motion=args.max_motion) if args.synthetic > 0 else None
    layered = LayeredMotion(args.size, "train", args.layered_max_motion, clips=clips,
                            val_fraction=args.val_fraction) if args.layered > 0 else None
    mixture = Mixture(train_set, synthetic, args.synthetic, layered, args.layered, _warp(args, device), args.warp)
    return TrainingData(clips, gaps, mixture, val_set.fixed(args.val_size, seed=VAL_SEED), train_set, val_set)


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
            raise ValueError(f"--init {args.init} has the configuration {start.config.to_dict()}, not "
                             f"{model.config.to_dict()}; pass the same --widths and --skips")
        model.load_state_dict(start.state_dict())
    return model
