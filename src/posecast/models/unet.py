"""``model.arch: unet``: thin full-resolution stems, a U-Net fusion decoder and a 3x3 head.

The lab's fusion decoder works at one resolution: every layer sees a 3 x 3 neighbourhood, so moving
the person's appearance from where the first frame shows them to where the pose puts them needs
many layers, and the lab's full-resolution stacks spend most of their compute on that. A U-Net
(an encoder that halves the resolution ``levels`` times, a decoder that doubles it back, with the
features of each resolution carried across) sees the whole 32 x 64 frame at its bottom level for
little compute, and its skips keep the pose's thin limbs sharp at full resolution.
Shapes: [B, C, H, W] in and out; H and W must be divisible by 2**levels.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from .blocks import DepthConvBlock
from .outputs import init_output_layer, output_channels
from .pose_context import context_channels
from .parts import CVAEModules, GaussianPredictor, fusion_channels, last_conv

_SLOPE = 0.1


def build(cfg: ModelConfig) -> CVAEModules:
    """The stems, the posterior (as in models/default.py, started as N(0, I)), the U-Net of
    model.levels halvings with top width D_dim and the head, in this order (a seed gives the same
    weights)."""
    features, block = cfg.F_dim + cfg.L_dim, partial(DepthConvBlock, gate=cfg.ffn_gate)
    frame_encoder = Stem(3, cfg.F_dim)
    pose_encoder = Stem(context_channels(cfg.pose_context), cfg.L_dim, cfg.pose_input == "inverted")
    posterior_net = GaussianPredictor(features, cfg.N_dim, block)
    posterior_net.zero_init()  # the KL starts at 0 (see models/default.py)
    fusion = UNetFusion(fusion_channels(cfg), cfg.D_dim, cfg.levels, norm=cfg.norm)
    generator = Head(cfg.D_dim, output_channels(cfg.output), norm=cfg.norm)
    init_output_layer(last_conv(generator), cfg.output)
    prior_net = GaussianPredictor(features, cfg.N_dim, block) if cfg.prior == "learned" else None
    return CVAEModules(frame_encoder, pose_encoder, posterior_net, fusion, generator, prior_net)


GROUPS = 8  # model.norm group: GroupNorm's groups (every width of the U-Net is a multiple of 8)


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm that, on CPU, normalises bf16 or fp16 input in fp32 and casts the output back.

    Under CPU bf16 autocast the convolutions hand the norm bf16 channels_last activations, and
    torch's mixed-precision kernel for them was the slowest op of the recipe's step after the
    convolutions (its 17 norms: 38 of 168 ms, forward and backward, on the AMD EPYC with
    AVX512-BF16). Its fp32 kernel on the upcast tensor takes 11.7 ms plus the casts, and an epoch of
    the recipe's hour 9 % less time (docs/performance.md; ``python benchmarks/speed.py --presets best
    --ablation-only``, the row "torch's bf16 GroupNorm"). The same parameters and state_dict as
    nn.GroupNorm. fp32 and fp64 input, and any input on a GPU (CUDA autocast already runs the norm
    in fp32), take nn.GroupNorm's own path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in (torch.bfloat16, torch.float16) or x.device.type != "cpu":
            return super().forward(x)
        weight = None if self.weight is None else self.weight.float()  # a module cast to bf16 too
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


def norm_layer(norm: str, channels: int) -> nn.Module:
    """GroupNorm of GROUPS groups for ``norm`` group (fewer where the channels do not divide),
    nothing (identity) for none."""
    if norm == "none":
        return nn.Identity()
    groups = next(g for g in range(min(GROUPS, channels), 0, -1) if channels % g == 0)
    return GroupNorm(groups, channels)


class PreActBlock(nn.Module):
    """[norm] -> LeakyReLU -> 3x3 conv -> [norm] -> LeakyReLU -> 3x3 conv, plus an identity (or 1x1)
    shortcut. Without a norm nothing bounds the activations: in 60-minute budgets the recipe's
    U-Net without one diverged at epoch 58 (its bottom level's activations went from about 25 to
    5e4 within two epochs) and its warped_first variant at epoch 47 (docs/quality.md)."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "none") -> None:
        super().__init__()
        self.norm1, self.norm2 = norm_layer(norm, in_ch), norm_layer(norm, out_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.skip is None else self.skip(x)
        out = self.conv1(F.leaky_relu(self.norm1(x), _SLOPE))
        return identity + self.conv2(F.leaky_relu(self.norm2(out), _SLOPE))


class Stem(nn.Module):
    """An image [B, 3, H, W] -> features [B, C, H, W] at full resolution: one 3x3 convolution (the
    U-Net does the rest). ``inverted`` reads (1 - x) * 4, as PoseEncoder does for pose images."""

    GAIN = 4.0

    def __init__(self, in_ch: int, out_ch: int, inverted: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.inverted = inverted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv((1 - x) * self.GAIN if self.inverted else x)


class UNetFusion(nn.Module):
    """cat(features) [B, in_ch, H, W] -> [B, width, H, W] through a U-Net of ``levels`` halvings.

    Widths per level: width, 2 width, 4 width, 6 width, then 8 width (the bottom level at H/8 x W/8
    for 3 levels)."""

    def __init__(self, in_ch: int, width: int, levels: int = 3, norm: str = "none") -> None:
        super().__init__()
        mult = [1, 2, 4, 6, 8, 8][: levels + 1]
        ch = [width * m for m in mult]
        self.levels = levels
        self.inp = nn.Conv2d(in_ch, ch[0], 3, padding=1)
        self.enc = nn.ModuleList(PreActBlock(c, c, norm) for c in ch)
        self.down = nn.ModuleList(nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1) for i in range(levels))
        self.mid = PreActBlock(ch[-1], ch[-1], norm)
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[i + 1], ch[i], 4, stride=2, padding=1) for i in range(levels))
        self.dec = nn.ModuleList(PreActBlock(2 * ch[i], ch[i], norm) for i in range(levels))

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat(features, dim=1))
        skips = []
        for i in range(self.levels):
            h = self.enc[i](h)
            skips.append(h)
            h = self.down[i](h)
        h = self.mid(self.enc[self.levels](h))
        for i in reversed(range(self.levels)):
            h = self.dec[i](torch.cat([self.up[i](h), skips[i]], dim=1))
        return h


class Head(nn.Module):
    """Decoder features [B, C, H, W] -> logits [B, out, H, W]; starts near zero (about a 0.5 mask
    over 0.5 grey in the masked modes), so the first steps do not push the mask into saturation
    (weights of std 1e-3 rather than 0, so that the first step's gradients reach the decoder)."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "none") -> None:
        super().__init__()
        self.norm = norm_layer(norm, in_ch)
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        nn.init.normal_(self.conv.weight, std=1e-3)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.leaky_relu(self.norm(x), _SLOPE))
