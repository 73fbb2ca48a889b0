"""The building blocks the architectures share: residual blocks and depthwise conv blocks with a
gated FFN (models/lab.py adds the template's own FFN). All keep the spatial size.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with LeakyReLU and an identity (or 1x1) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, slope: float = 0.01) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        # negative_slope by keyword: nn.LeakyReLU(True) would set the slope to 1 (a no-op). In place:
        # it only ever reads a fresh convolution output, which nothing else keeps
        self.act = nn.LeakyReLU(negative_slope=slope, inplace=True)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.skip is None else self.skip(x)
        out = self.act(self.conv1(x))
        out = self.act(self.conv2(out))
        return out + identity


class DepthConv(nn.Module):
    """1x1 conv -> LeakyReLU -> depthwise 3x3 -> 1x1 conv, plus a shortcut."""

    def __init__(self, in_ch: int, out_ch: int, slope: float = 0.01) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 1)
        self.act = nn.LeakyReLU(negative_slope=slope, inplace=True)  # on conv1's fresh output
        self.depth_conv = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 1)
        self.adaptor = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.adaptor is None else self.adaptor(x)
        out = self.conv2(self.depth_conv(self.act(self.conv1(x))))
        return out + identity


class GatedConvFFN(nn.Module):
    """Gated 1x1 feed-forward: expand, split into value and gate, gate the value, project.

    ``gate`` (model.ffn_gate): ``relu``, leaky_relu(value) * relu(gate); ``sigmoid``,
    leaky_relu(value) * sigmoid(gate), a GLU. value * relu(gate) is quadratic in x, and a stack
    of such blocks can overflow fp32 once activations grow (seen at step 22 of a masked,
    downsampling model); value * sigmoid(gate) grows at most linearly."""

    def __init__(self, ch: int, slope: float = 0.1, gate: str = "relu", hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(min(ch * 4, 1024), ch * 2)
        self.gate = gate
        self.conv_in = nn.Conv2d(ch, hidden, 1)
        self.act = nn.LeakyReLU(negative_slope=slope, inplace=True)  # on a fresh half of conv_in
        self.conv_out = nn.Conv2d(hidden // 2, ch, 1)

    def halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """conv_in(x) split into (value, gate), as two convolutions with the halves of its weight
        (the same parameters and the same math as conv_in then chunk): each half comes out
        contiguous, so no strided views of a channels_last tensor reach the elementwise ops, and
        the backward needs no concatenation of their gradients (measured: benchmarks/speed.py)."""
        half = self.conv_in.out_channels // 2
        w, b = self.conv_in.weight, self.conv_in.bias
        return (F.conv2d(x, w[:half], None if b is None else b[:half]),
                F.conv2d(x, w[half:], None if b is None else b[half:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.halves(x)
        if self.gate == "sigmoid":
            return x + self.conv_out(self.act(value) * torch.sigmoid(gate))
        return x + self.conv_out(self.act(value) * F.relu(gate, inplace=True))  # relu(leaky_relu(g)) = relu(g)


class DepthConvBlock(nn.Module):
    """DepthConv followed by the gated FFN (``gate``: see GatedConvFFN)."""

    def __init__(self, in_ch: int, out_ch: int, gate: str = "relu") -> None:
        super().__init__()
        self.conv = DepthConv(in_ch, out_ch)
        self.ffn = GatedConvFFN(out_ch, gate=gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.conv(x))
