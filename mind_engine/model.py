"""MindNet: the frame-interpolation network of the paper (Table 1, DESIGN.md section 2).

``MindNet(i1, i3)`` maps two RGB frames in [0, 1] to the middle frame. The only
normalisation is a shift by 0.5 in and out, so Jacobian rows are derivatives with
respect to [0, 1] pixels and the linearised backward needs no rescaling.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

PAPER_ENCODER = (96, 96, 128, 128, 128)  # C1..C5
PAPER_DECODER = (128, 128, 128, 96, 96)  # D5..D1
MULTIPLE = 32  # H and W must be multiples of 2**len(encoder)


@dataclass(frozen=True)
class MindConfig:
    """Widths of the network; stored beside the tensors in every checkpoint."""

    encoder: tuple[int, ...] = field(default=PAPER_ENCODER)
    decoder: tuple[int, ...] = field(default=PAPER_DECODER)

    def __post_init__(self):
        object.__setattr__(self, "encoder", tuple(int(w) for w in self.encoder))
        object.__setattr__(self, "decoder", tuple(int(w) for w in self.decoder))
        if len(self.encoder) != 5 or len(self.decoder) != 5:
            raise ValueError(f"MindNet has 5 encoder and 5 decoder blocks; got widths "
                             f"encoder={self.encoder}, decoder={self.decoder}")
        if min(self.encoder + self.decoder) < 1:
            raise ValueError(f"widths must be positive: encoder={self.encoder}, decoder={self.decoder}")

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}


class ConvBlock(nn.Module):
    """3 x [conv 3x3 -> PReLU], then maxpool 2x2 (the encoder's C blocks)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1) for i in range(3))
        self.acts = nn.ModuleList(nn.PReLU(cout) for _ in range(3))
        self.pool = nn.MaxPool2d(2, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output before pooling."""
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))


class DeconvBlock(nn.Module):
    """convtranspose 4x4 s2 -> PReLU, then 2 x [conv 3x3 -> PReLU] (the decoder's D blocks)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)]
            + [nn.Conv2d(cout, cout, 3, padding=1) for _ in range(2)])
        self.acts = nn.ModuleList(nn.PReLU(cout) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        return x


class MindNet(nn.Module):
    """Encoder C1..C5, decoder D5..D1 with skips C4->D4, C3->D3, C2->D2, final conv to RGB."""

    def __init__(self, config: MindConfig | None = None, **widths):
        super().__init__()
        self.config = config if config is not None else MindConfig(**widths)
        enc, dec = self.config.encoder, self.config.decoder
        self.encoder = nn.ModuleList(ConvBlock(cin, cout) for cin, cout in zip((6,) + enc[:-1], enc))
        # D5 on C5; D4, D3, D2 on cat(previous, skip); D1 on D2.
        dec_in = (enc[4], dec[0] + enc[3], dec[1] + enc[2], dec[2] + enc[1], dec[3])
        self.decoder = nn.ModuleList(DeconvBlock(cin, cout) for cin, cout in zip(dec_in, dec))
        self.head = nn.Conv2d(dec[4], 3, 3, padding=1)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Xavier-uniform weights, zero biases, PReLU slopes 0.25 (the paper's initialisation)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight, generator=generator)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.PReLU):
                nn.init.constant_(m.weight, 0.25)

    def forward(self, i1: torch.Tensor, i3: torch.Tensor) -> torch.Tensor:
        check_shape(i1, i3)
        x = torch.cat([i1, i3], 1) - 0.5
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = self.decoder[0](skips[4])
        for block, skip in zip(self.decoder[1:4], (skips[3], skips[2], skips[1])):
            x = block(torch.cat([x, skip], 1))
        x = self.decoder[4](x)
        return self.head(x) + 0.5


def check_shape(i1: torch.Tensor, i3: torch.Tensor) -> None:
    """The network's own input contract: two (N,3,H,W) tensors, H and W multiples of 32."""
    if i1.shape != i3.shape:
        raise ValueError(f"MindNet inputs differ in shape: {tuple(i1.shape)} vs {tuple(i3.shape)}")
    if i1.dim() != 4 or i1.shape[1] != 3:
        raise ValueError(f"MindNet takes (N,3,H,W) tensors; got {tuple(i1.shape)}")
    h, w = i1.shape[-2:]
    if h % MULTIPLE or w % MULTIPLE:
        raise ValueError(f"MindNet needs H and W to be multiples of {MULTIPLE}; got {h}x{w} "
                         f"(mind_engine.match pads for you)")
