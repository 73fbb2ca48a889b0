"""The five modules of the lab's conditional VAE. Shapes: [B, C, H, W] in and out."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import DepthConvBlock, ResidualBlock


def _div(ch: int, k: int) -> int:
    return max(1, ch // k)


class FrameEncoder(nn.Module):
    """RGB frame [B, 3, H, W] -> features [B, F, H, W] (the lab's RGB_Encoder)."""

    def __init__(self, in_ch: int, out_ch: int, down: int = 0, lab: bool = False) -> None:
        super().__init__()
        c8, c4, c2 = _div(out_ch, 8), _div(out_ch, 4), _div(out_ch, 2)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate([(in_ch, c8), (c8, c4), (c4, c2)]):
            layers += [ResidualBlock(a, b), DepthConvBlock(b, b, lab)]
            if i < down:  # a strided conv halves the resolution (down=0 is the lab's full-res encoder)
                layers.append(nn.Conv2d(b, b, 3, stride=2, padding=1))
        layers.append(nn.Conv2d(c2, out_ch, 3, padding=1))
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class PoseEncoder(FrameEncoder):
    """Pose-skeleton image [B, 3, H, W] -> features [B, L, H, W] (the lab's Label_Encoder).

    ``inverted``: read (1 - pose) * 4 instead of the image: the skeletons are faint coloured lines
    on white (97% of the pixels are near 1, the lines reach about 0.7), so the inverted input is 0
    off the skeleton and about 1 on it (model.pose_input: inverted)."""

    GAIN = 4.0

    def __init__(self, in_ch: int, out_ch: int, down: int = 0, inverted: bool = False) -> None:
        super().__init__(in_ch, out_ch, down)
        self.inverted = inverted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network((1 - x) * self.GAIN if self.inverted else x)


class LabLabelEncoder(nn.Module):
    """The lab template's Label_Encoder, layer for layer (model.arch: lab loads its checkpoints):
    reflect-pad 3, 7x7 conv, BatchNorm, an identity activation (the template's nn.LeakyReLU(True)
    has negative_slope 1), a residual block. [B, 3, H, W] -> [B, L, H, W]."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        half = _div(out_ch, 2)
        self.network = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(in_ch, half, 7), nn.BatchNorm2d(half),
            nn.LeakyReLU(negative_slope=1.0), ResidualBlock(half, out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


@dataclass
class Gaussian:
    """A diagonal Gaussian over the latent map: mean and log-variance, both [B, N, H, W]."""

    mu: torch.Tensor
    logvar: torch.Tensor


class GaussianPredictor(nn.Module):
    """(features, features) -> Gaussian over z (the lab's Gaussian_Predictor)."""

    def __init__(self, in_ch: int, out_ch: int, lab: bool = False) -> None:
        super().__init__()
        c4, c2 = _div(out_ch, 4), _div(out_ch, 2)
        self.network = nn.Sequential(
            ResidualBlock(in_ch, c4), DepthConvBlock(c4, c4, lab),
            ResidualBlock(c4, c2), DepthConvBlock(c2, c2, lab),
            ResidualBlock(c2, out_ch),
            # the template's nn.LeakyReLU(True) sets negative_slope 1: an identity, kept for its weights
            nn.LeakyReLU(negative_slope=1.0 if lab else 0.01),
            nn.Conv2d(out_ch, out_ch * 2, 1),
        )


    def zero_init(self) -> None:
        """Start as N(0, I): the KL to the standard prior starts at 0."""
        nn.init.zeros_(self.network[-1].weight)
        nn.init.zeros_(self.network[-1].bias)

    def forward(self, *features: torch.Tensor) -> Gaussian:
        mu, logvar = self.network(torch.cat(features, dim=1)).chunk(2, dim=1)
        # a wide safety range (std from 3e-7 to 2e4): exp() of an unbounded logvar overflows
        return Gaussian(mu, logvar.clamp(-30.0, 20.0))


class FusionDecoder(nn.Module):
    """cat(prev-frame features, pose features, z[, first-frame features]) -> [B, D, H, W]."""

    def __init__(self, in_ch: int, out_ch: int, lab: bool = False) -> None:
        super().__init__()
        c4, c2 = _div(in_ch, 4), _div(in_ch, 2)
        if lab:  # the lab template's Decoder_Fusion: in -> in/4 -> in/2 -> out/2 -> out
            self.network = nn.Sequential(
                DepthConvBlock(in_ch, in_ch, True), ResidualBlock(in_ch, c4), DepthConvBlock(c4, c2, True),
                ResidualBlock(c2, c2), DepthConvBlock(c2, _div(out_ch, 2), True),
                nn.Conv2d(_div(out_ch, 2), out_ch, 1),
            )
            return
        self.network = nn.Sequential(
            DepthConvBlock(in_ch, in_ch),
            ResidualBlock(in_ch, c4), DepthConvBlock(c4, c4),
            ResidualBlock(c4, c2), DepthConvBlock(c2, c2),
            nn.Conv2d(c2, out_ch, 1),
        )

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.network(torch.cat(features, dim=1))


class Generator(nn.Module):
    """Fused features [B, D, h, w] -> logits [B, out, h * 2**up, w * 2**up] (activation by the caller)."""

    def __init__(self, in_ch: int, out_ch: int = 3, up: int = 0, lab: bool = False) -> None:
        super().__init__()
        c4, c2 = _div(in_ch, 4), _div(in_ch, 2)
        if lab:  # the lab template's Generator: in -> in/2 -> in/4 -> in/8 -> out
            c8 = _div(in_ch, 8)
            self.network = nn.Sequential(
                DepthConvBlock(in_ch, in_ch, True), ResidualBlock(in_ch, c2), DepthConvBlock(c2, c2, True),
                ResidualBlock(c2, c4), DepthConvBlock(c4, c4, True), ResidualBlock(c4, c8),
                DepthConvBlock(c8, c8, True), nn.Conv2d(c8, out_ch, 1),
            )
            return
        layers: list[nn.Module] = [DepthConvBlock(in_ch, in_ch)]
        for i, (a, b) in enumerate([(in_ch, c4), (c4, c2)] + [(c2, c2)] * max(0, up - 2)):
            if i < up:  # undo the encoders' downsampling before the 3x3 convs
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            layers += [ResidualBlock(a, b), DepthConvBlock(b, b)]
        layers.append(nn.Conv2d(c2, out_ch, 1))
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)
