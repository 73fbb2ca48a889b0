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

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        c8, c4, c2 = _div(out_ch, 8), _div(out_ch, 4), _div(out_ch, 2)
        self.network = nn.Sequential(
            ResidualBlock(in_ch, c8), DepthConvBlock(c8, c8),
            ResidualBlock(c8, c4), DepthConvBlock(c4, c4),
            ResidualBlock(c4, c2), DepthConvBlock(c2, c2),
            nn.Conv2d(c2, out_ch, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class PoseEncoder(FrameEncoder):
    """Pose-skeleton image [B, 3, H, W] -> features [B, L, H, W] (the lab's Label_Encoder)."""


@dataclass
class Gaussian:
    """A diagonal Gaussian over the latent map: mean and log-variance, both [B, N, H, W]."""

    mu: torch.Tensor
    logvar: torch.Tensor

    def sample(self, eps: torch.Tensor | None = None) -> torch.Tensor:
        """Reparameterisation trick: z = mu + eps * exp(logvar / 2)."""
        if eps is None:
            eps = torch.randn_like(self.mu)
        return self.mu + eps * torch.exp(0.5 * self.logvar)


class GaussianPredictor(nn.Module):
    """(features, features) -> Gaussian over z (the lab's Gaussian_Predictor)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        c4, c2 = _div(out_ch, 4), _div(out_ch, 2)
        self.network = nn.Sequential(
            ResidualBlock(in_ch, c4), DepthConvBlock(c4, c4),
            ResidualBlock(c4, c2), DepthConvBlock(c2, c2),
            ResidualBlock(c2, out_ch),
            nn.LeakyReLU(negative_slope=0.01),
            nn.Conv2d(out_ch, out_ch * 2, 1),
        )

    def forward(self, *features: torch.Tensor) -> Gaussian:
        mu, logvar = self.network(torch.cat(features, dim=1)).chunk(2, dim=1)
        return Gaussian(mu, logvar)


class FusionDecoder(nn.Module):
    """cat(prev-frame features, pose features, z[, first-frame features]) -> [B, D, H, W]."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        c4, c2 = _div(in_ch, 4), _div(in_ch, 2)
        self.network = nn.Sequential(
            DepthConvBlock(in_ch, in_ch),
            ResidualBlock(in_ch, c4), DepthConvBlock(c4, c4),
            ResidualBlock(c4, c2), DepthConvBlock(c2, c2),
            nn.Conv2d(c2, out_ch, 1),
        )

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.network(torch.cat(features, dim=1))


class Generator(nn.Module):
    """Fused features [B, D, H, W] -> RGB logits [B, 3, H, W] (sigmoid applied by the caller)."""

    def __init__(self, in_ch: int, out_ch: int = 3) -> None:
        super().__init__()
        c4, c2 = _div(in_ch, 4), _div(in_ch, 2)
        self.network = nn.Sequential(
            DepthConvBlock(in_ch, in_ch),
            ResidualBlock(in_ch, c4), DepthConvBlock(c4, c4),
            ResidualBlock(c4, c2), DepthConvBlock(c2, c2),
            nn.Conv2d(c2, out_ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)
