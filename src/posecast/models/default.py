"""``model.arch: posecast`` (the default): the lab's five modules, built the posecast way.

The same blocks as the lab template, with these choices: a real LeakyReLU where the template's
nn.LeakyReLU(True) is an identity; a pose encoder built like the frame encoder (the template's
Label_Encoder is a 7x7 convolution and BatchNorm), reading the inverted pose where
``model.pose_input`` asks; a fusion decoder and a generator that narrow steadily (in -> in/4 ->
in/2 -> out); the gated FFN of blocks.py with the gate of ``model.ffn_gate``; strided encoders and
an upsampling generator where ``model.down`` asks; a posterior that starts as N(0, I).
models/lab.py builds the template's modules layer for layer. Shapes: [B, C, H, W] in and out.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..config import ModelConfig
from .blocks import DepthConvBlock, ResidualBlock
from .outputs import init_output_layer, output_channels
from .parts import CVAEModules, GaussianPredictor, div, fusion_channels, last_conv


def build(cfg: ModelConfig) -> CVAEModules:
    """The modules of ``cfg`` (built in this order, so that a seed gives the same weights)."""
    F, L, N, gate = cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.ffn_gate
    frame_encoder = FrameEncoder(3, F, cfg.down, gate)
    pose_encoder = PoseEncoder(3, L, cfg.down, cfg.pose_input == "inverted", gate)
    posterior_net = GaussianPredictor(F + L, N, partial(DepthConvBlock, gate=gate))
    # q starts as N(0, I), so the KL term starts at 0 instead of dominating the first hundreds of
    # steps (with the lab's summed KL it began ~1e4 times the MSE)
    posterior_net.zero_init()
    fusion = FusionDecoder(fusion_channels(cfg), cfg.D_dim, gate)
    generator = Generator(cfg.D_dim, output_channels(cfg.output), cfg.down, gate)
    init_output_layer(last_conv(generator), cfg.output)
    prior_net = GaussianPredictor(F + L, N, partial(DepthConvBlock, gate=gate)) if cfg.prior == "learned" else None
    return CVAEModules(frame_encoder, pose_encoder, posterior_net, fusion, generator, prior_net)


class FrameEncoder(nn.Module):
    """RGB frame [B, 3, H, W] -> features [B, F, H, W] (the lab's RGB_Encoder)."""

    def __init__(self, in_ch: int, out_ch: int, down: int = 0, gate: str = "relu") -> None:
        super().__init__()
        c8, c4, c2 = div(out_ch, 8), div(out_ch, 4), div(out_ch, 2)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate([(in_ch, c8), (c8, c4), (c4, c2)]):
            layers += [ResidualBlock(a, b), DepthConvBlock(b, b, gate)]
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

    def __init__(self, in_ch: int, out_ch: int, down: int = 0, inverted: bool = False, gate: str = "relu") -> None:
        super().__init__(in_ch, out_ch, down, gate)
        self.inverted = inverted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network((1 - x) * self.GAIN if self.inverted else x)


class FusionDecoder(nn.Module):
    """cat(prev-frame features, pose features, z[, first-frame features]) -> [B, D, H, W]."""

    def __init__(self, in_ch: int, out_ch: int, gate: str = "relu") -> None:
        super().__init__()
        c4, c2 = div(in_ch, 4), div(in_ch, 2)
        self.network = nn.Sequential(
            DepthConvBlock(in_ch, in_ch, gate),
            ResidualBlock(in_ch, c4), DepthConvBlock(c4, c4, gate),
            ResidualBlock(c4, c2), DepthConvBlock(c2, c2, gate),
            nn.Conv2d(c2, out_ch, 1),
        )

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.network(torch.cat(features, dim=1))


class Generator(nn.Module):
    """Fused features [B, D, h, w] -> logits [B, out, h * 2**up, w * 2**up] (activation by the caller)."""

    def __init__(self, in_ch: int, out_ch: int = 3, up: int = 0, gate: str = "relu") -> None:
        super().__init__()
        c4, c2 = div(in_ch, 4), div(in_ch, 2)
        layers: list[nn.Module] = [DepthConvBlock(in_ch, in_ch, gate)]
        for i, (a, b) in enumerate([(in_ch, c4), (c4, c2)] + [(c2, c2)] * max(0, up - 2)):
            if i < up:  # undo the encoders' downsampling before the 3x3 convs
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            layers += [ResidualBlock(a, b), DepthConvBlock(b, b, gate)]
        layers.append(nn.Conv2d(c2, out_ch, 1))
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)
