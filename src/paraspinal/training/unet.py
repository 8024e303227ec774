"""The 2-D U-Net trained by ``paraspinal train`` and exported to ONNX for inference.

Input ``(batch, in_channels, height, width)`` float32, height and width multiples of
``2 ** (levels - 1)``; output ``(batch, n_classes, height, width)`` logits. Encoder levels use a
stride-2 convolution to downsample (as nnU-Net does), decoder levels a 2x2 transposed
convolution; every convolution is followed by instance normalisation and leaky ReLU, which keeps
the network indifferent to the image's overall brightness and contrast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet2D` (stored verbatim in model.json)."""

    in_channels: int = 1
    n_classes: int = 5
    base_channels: int = 16
    max_channels: int = 256
    levels: int = 5
    convs_per_level: int = 2

    @property
    def size_multiple(self) -> int:
        """Height and width of the input must be multiples of this (pixels)."""
        return 2 ** (self.levels - 1)

    def channels(self) -> list[int]:
        return [min(self.base_channels * 2**level, self.max_channels) for level in range(self.levels)]

    def to_dict(self) -> dict[str, object]:
        return {"name": "unet2d", **asdict(self)}


def _conv(in_ch: int, out_ch: int, *, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1),
        nn.InstanceNorm2d(out_ch, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
    )


def _stage(in_ch: int, out_ch: int, *, n_convs: int, stride: int) -> nn.Sequential:
    layers = [_conv(in_ch, out_ch, stride=stride)]
    layers += [_conv(out_ch, out_ch) for _ in range(n_convs - 1)]
    return nn.Sequential(*layers)


class UNet2D(nn.Module):
    """A plain 2-D U-Net (see the module docstring for shapes)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        chans = config.channels()
        n = config.convs_per_level
        self.encoder = nn.ModuleList(
            _stage(
                config.in_channels if level == 0 else chans[level - 1],
                chans[level],
                n_convs=n,
                stride=1 if level == 0 else 2,
            )
            for level in range(config.levels)
        )
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(chans[level + 1], chans[level], kernel_size=2, stride=2)
            for level in range(config.levels - 1)
        )
        self.decoder = nn.ModuleList(
            _stage(2 * chans[level], chans[level], n_convs=n, stride=1) for level in range(config.levels - 1)
        )
        self.head = nn.Conv2d(chans[0], config.n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for level in reversed(range(self.config.levels - 1)):
            x = self.upsample[level](x)
            x = self.decoder[level](torch.cat([x, skips[level]], dim=1))
        return self.head(x)
