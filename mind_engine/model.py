"""MindNet: the frame-interpolation network of the paper (Table 1; docs/architecture.md).

``MindNet(i1, i3)`` maps two RGB frames in [0, 1] to the middle frame. The only
normalisation is a shift by 0.5 in and out, so Jacobian rows are derivatives with
respect to [0, 1] pixels and the linearised backward needs no rescaling.

The topology is defined here once, by :class:`MindConfig`: the encoder and decoder widths (one
block per entry, each encoder block halving the resolution and each decoder block doubling it)
and the skip table (which decoder blocks also read the encoder output of their resolution).
``forward`` follows it, and so does everything that inverts the network
(``mind_engine.engine``): a change of widths, depth or skips needs no edit there.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

PAPER_ENCODER = (96, 96, 128, 128, 128)  # C1..C5
PAPER_DECODER = (128, 128, 128, 96, 96)  # D5..D1
PAPER_SKIPS = (1, 2, 3)  # D4, D3, D2 also read C4, C3, C2 (the resolution-matched pairing)


@dataclass(frozen=True)
class MindConfig:
    """Widths and skips of the network; stored beside the tensors in every checkpoint.

    Decoder block k (0 = the coarsest, D5 in the paper) works at level ``depth - 1 - k`` (level
    l has 1/2**l of the input's resolution). Its input is the previous decoder block's output
    (block 0: the last encoder block's pooled output), concatenated, when k is in ``skips``, with
    the pooled output of encoder block ``skip_source(k)``, the one of the same resolution.
    """

    encoder: tuple[int, ...] = field(default=PAPER_ENCODER)
    decoder: tuple[int, ...] = field(default=PAPER_DECODER)
    skips: tuple[int, ...] = field(default=PAPER_SKIPS)

    def __post_init__(self):
        for name in ("encoder", "decoder", "skips"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not self.encoder or len(self.encoder) != len(self.decoder):
            raise ValueError(f"MindNet needs as many decoder as encoder blocks (at least one); got widths "
                             f"encoder={self.encoder}, decoder={self.decoder}")
        if min(self.encoder + self.decoder) < 1:
            raise ValueError(f"widths must be positive: encoder={self.encoder}, decoder={self.decoder}")
        if any(k < 1 or k >= self.depth for k in self.skips) or len(set(self.skips)) != len(self.skips):
            raise ValueError(f"skips must be distinct decoder blocks 1..{self.depth - 1} (block 0 already "
                             f"reads the last encoder block); got {self.skips}")

    @property
    def depth(self) -> int:
        """Number of encoder (and decoder) blocks."""
        return len(self.encoder)

    @property
    def multiple(self) -> int:
        """H and W must be multiples of this: every encoder block halves them."""
        return 2 ** self.depth

    def skip_source(self, k: int) -> int:
        """The encoder block whose pooled output decoder block k reads beside its input."""
        return self.depth - 1 - k

    def decoder_inputs(self) -> tuple[int, ...]:
        """Input channels of each decoder block."""
        prev = (self.encoder[-1],) + self.decoder[:-1]
        return tuple(c + (self.encoder[self.skip_source(k)] if k in self.skips else 0) for k, c in enumerate(prev))

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}


MULTIPLE = MindConfig().multiple  # of the paper's network, and of every network of its depth

Record = Callable[[nn.Module, torch.Tensor], None]


def observed(module: nn.Module, x: torch.Tensor, record: Record | None) -> torch.Tensor:
    """``module(x)``, first handing ``record`` the module and its input (PReLUs and maxpools: what
    the engine's linearisation needs from a forward)."""
    if record is not None:
        record(module, x)
    return module(x)


class ConvBlock(nn.Module):
    """3 x [conv 3x3 -> PReLU], then maxpool 2x2 (the encoder's C blocks)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1) for i in range(3))
        self.acts = nn.ModuleList(nn.PReLU(cout) for _ in range(3))
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        for conv, act in zip(self.convs, self.acts):
            x = observed(act, conv(x), record)
        return observed(self.pool, x, record)


class DeconvBlock(nn.Module):
    """convtranspose 4x4 s2 -> PReLU, then 2 x [conv 3x3 -> PReLU] (the decoder's D blocks)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)]
            + [nn.Conv2d(cout, cout, 3, padding=1) for _ in range(2)])
        self.acts = nn.ModuleList(nn.PReLU(cout) for _ in range(3))

    def forward(self, x: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        for conv, act in zip(self.convs, self.acts):
            x = observed(act, conv(x), record)
        return x


class MindNet(nn.Module):
    """Encoder blocks, decoder blocks with the skips of ``config``, a final conv to RGB."""

    def __init__(self, config: MindConfig | None = None, **widths):
        super().__init__()
        self.config = config if config is not None else MindConfig(**widths)
        enc, dec = self.config.encoder, self.config.decoder
        self.encoder = nn.ModuleList(ConvBlock(cin, cout) for cin, cout in zip((6,) + enc[:-1], enc))
        self.decoder = nn.ModuleList(DeconvBlock(cin, cout) for cin, cout in zip(self.config.decoder_inputs(), dec))
        self.head = nn.Conv2d(dec[-1], 3, 3, padding=1)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Xavier-uniform weights, zero biases, PReLU slopes 0.25 (the paper's initialisation)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight, generator=generator)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.PReLU):
                nn.init.constant_(m.weight, 0.25)

    def forward(self, i1: torch.Tensor, i3: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        """The middle frame. ``record(module, x)``, when given, is called with the input of every
        PReLU and maxpool before it runs: how the engine reads the forward's decisions in the call
        itself, without hooks on the modules (which every thread sharing the model would fire)."""
        return self.image(self.features(i1, i3, record))

    def image(self, features: torch.Tensor) -> torch.Tensor:
        """The middle frame from the last decoder features."""
        return self.head(features) + 0.5

    def features(self, i1: torch.Tensor, i3: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        """The last decoder block's output, which ``head`` maps to RGB (training-only heads
        read it too, ``mind_engine.training.motion_head``); ``record`` as in ``forward``."""
        self.check_input(i1, i3)
        x = torch.cat([i1, i3], 1) - 0.5
        pooled = []
        for block in self.encoder:
            x = block(x, record)
            pooled.append(x)
        for k, block in enumerate(self.decoder):
            if k in self.config.skips:
                x = torch.cat([x, pooled[self.config.skip_source(k)]], 1)
            x = block(x, record)
        return x

    def check_input(self, i1: torch.Tensor, i3: torch.Tensor) -> None:
        """The network's input contract: two (N,3,H,W) tensors, H and W multiples of
        ``config.multiple``."""
        if i1.shape != i3.shape:
            raise ValueError(f"MindNet inputs differ in shape: {tuple(i1.shape)} vs {tuple(i3.shape)}")
        if i1.dim() != 4 or i1.shape[1] != 3:
            raise ValueError(f"MindNet takes (N,3,H,W) tensors; got {tuple(i1.shape)}")
        h, w = i1.shape[-2:]
        m = self.config.multiple
        if h % m or w % m:
            raise ValueError(f"MindNet needs H and W to be multiples of {m}; got {h}x{w} "
                             f"(mind_engine.match pads for you)")
