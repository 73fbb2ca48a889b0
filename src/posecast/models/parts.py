"""What every architecture shares: the latent Gaussian and the module that predicts it, and
``CVAEModules``, what an architecture's ``build(cfg)`` returns. Shapes: [B, C, H, W]."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..config import ModelConfig
from .blocks import DepthConvBlock, ResidualBlock

# (in_ch, out_ch) -> a block that keeps the spatial size: DepthConvBlock with the configured gate,
# or the lab template's (models/lab.py)
BlockFactory = Callable[[int, int], nn.Module]


def div(ch: int, k: int) -> int:
    """ch // k, at least 1: the channel progressions of the tiny presets stay valid."""
    return max(1, ch // k)


@dataclass
class Gaussian:
    """A diagonal Gaussian over the latent map: mean and log-variance, both [B, N, H, W]."""

    mu: torch.Tensor
    logvar: torch.Tensor


class GaussianPredictor(nn.Module):
    """(features, features) -> Gaussian over z (the lab's Gaussian_Predictor).

    ``block``: the depthwise conv block between the residual blocks; ``slope``: the LeakyReLU
    before the last convolution (the lab template's nn.LeakyReLU(True) has slope 1, an identity
    that models/lab.py keeps for its weights)."""

    def __init__(self, in_ch: int, out_ch: int, block: BlockFactory = DepthConvBlock, slope: float = 0.01) -> None:
        super().__init__()
        c4, c2 = div(out_ch, 4), div(out_ch, 2)
        self.network = nn.Sequential(
            ResidualBlock(in_ch, c4), block(c4, c4),
            ResidualBlock(c4, c2), block(c2, c2),
            ResidualBlock(c2, out_ch),
            nn.LeakyReLU(negative_slope=slope),
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


@dataclass
class CVAEModules:
    """The five modules of a PoseCVAE (and the learned prior's), as an architecture builds them.

    frame_encoder: frame [B, 3, H, W] -> [B, F, h, w]; pose_encoder: pose image -> [B, L, h, w];
    posterior_net, prior_net: (features, pose features) -> Gaussian [B, N, h, w] (prior_net None:
    the standard prior N(0, I)); fusion: cat(features) -> [B, D, h, w]; generator: [B, D, h, w]
    -> logits [B, output_channels(model.output), H, W]."""

    frame_encoder: nn.Module
    pose_encoder: nn.Module
    posterior_net: GaussianPredictor
    fusion: nn.Module
    generator: nn.Module
    prior_net: GaussianPredictor | None


def fusion_channels(cfg: ModelConfig) -> int:
    """The fusion decoder's input channels: the previous frame's features (model.prev_frame_cond),
    the pose features, z, the first frame's features (model.first_frame_cond) and its pose's
    features (model.first_pose_cond)."""
    F, L = cfg.F_dim, cfg.L_dim
    return ((F if cfg.prev_frame_cond else 0) + L + cfg.N_dim + (F if cfg.first_frame_cond else 0)
            + (L if cfg.first_pose_cond else 0))


def last_conv(module: nn.Module) -> nn.Conv2d:
    """The last convolution of a module (a generator's output layer, for outputs.init_output_layer)."""
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1]
