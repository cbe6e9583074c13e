"""How much memory matching one pair needs, estimated before anything runs.

Tiers 1-3 keep the network linearised at the pair (``Linearisation``: one slope map per PReLU
and one mask per maxpool, each the size of that layer's input) for as long as they match; the
forward that records them holds a few activations more while it runs. On top come one chunk's
working memory (the tier's ``memory`` budget) and one chunk of results (``Engine.chunk``).
The cache is measured by linearising a fresh network of the model's configuration on one tile of
the network's multiple and scaling by the tiles the pair holds: the estimate follows any topology
of widths, depths and skips, costs next to nothing and never touches the caller's model (which
other threads may be running). A forward on torch's meta device did the same but imported
torch._dynamo on first use: 1.2 s of CPU added to the first match of a process.
"""
from __future__ import annotations

import os
from functools import lru_cache

import torch
from torch import nn

from ..model import MindConfig, MindNet
from .linearisation import Linearisation

GiB = 1 << 30


def linearisation_bytes(model: nn.Module, hw_padded: tuple[int, int], element_size: int = 4,
                        largest: bool = False) -> int:
    """Bytes of the linearisation's cache for one pair of padded size ``hw_padded`` (``largest``:
    of its largest map instead). Every cached map covers the input at a fixed scale, so its size
    is proportional to the number of ``multiple`` x ``multiple`` tiles the pair holds."""
    m = model.config.multiple
    tiles = (hw_padded[0] // m) * (hw_padded[1] // m)
    sizes = _tile_map_sizes(model.config)
    return (max(sizes) if largest else sum(sizes)) * tiles * element_size


@lru_cache(maxsize=16)
def _tile_map_sizes(config: MindConfig) -> tuple[int, ...]:
    """Elements of each map of the linearisation of a fresh network of ``config`` on one tile of
    zeros (remembered per configuration: building the network costs milliseconds). The network is
    built on the meta device and given zero weights, so its initialisation draws nothing from the
    caller's random number generator."""
    with torch.device("meta"):
        net = MindNet(config)
    net = net.to_empty(device="cpu")
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    x = torch.zeros(1, 3, config.multiple, config.multiple)
    return tuple(t.numel() for t in Linearisation(net, x, x).maps())


def estimate_bytes(model: nn.Module, hw_padded: tuple[int, int], working: int, results: int) -> int:
    """Peak bytes of one match: the cache, the few live activations of the forward recording it
    (six of the largest map), one chunk's working memory and one chunk of results. Checked once:
    the default model on a 1536x1024 pair, t3 on the CPU, estimated 3.29 GiB, measured 3.27 GiB
    (growth of the peak resident set)."""
    return (linearisation_bytes(model, hw_padded) + 6 * linearisation_bytes(model, hw_padded, largest=True)
            + working + results)


def available_bytes(device: torch.device) -> int | None:
    """Memory free on ``device`` now (None where unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        return None


def check_fits(need: int, device: torch.device, hw: tuple[int, int]) -> None:
    """Refuse, with the figures, a pair whose estimate exceeds what ``device`` has free."""
    free = available_bytes(device)
    if free is not None and need > free:
        raise MemoryError(f"matching a {hw[1]}x{hw[0]} (WxH) pair needs about {need / GiB:.1f} GiB on {device}, "
                          f"{free / GiB:.1f} GiB is free: downscale the images (the network's cache grows "
                          f"with H x W) or free memory")
