"""``model.arch: lab``: the lab template's five modules layer for layer, and its checkpoint keys.

What it keeps from the template, which loading the template's own checkpoints needs
(``posecast evaluate/predict --checkpoint lab_ckpt.pth``): its Label_Encoder (a 7x7 convolution and
BatchNorm), its channel progressions, its ConvFFN (value * leaky_relu(gate), 4 x the channels
wide), its slope-1 LeakyReLUs (the template's nn.LeakyReLU(True)) and a posterior with the default
initialisation. ``model.ffn_gate: sigmoid`` gives its FFNs the bounded gate of blocks.py.

The template's ``Trainer.save`` writes ``{"state_dict": VAE_Model.state_dict(), "optimizer", "lr",
"tfr", "last_epoch"}``. Its five modules are ``nn.Sequential``s, so a key reads
``<module>.<layer index>.<block key>``; posecast's modules keep their layers in ``.network``
(the modules' names: ``LAB_MODULES``)::

    frame_transformation.1.block.0.conv1.0.weight -> frame_encoder.network.1.conv.conv1.weight
    Gaussian_Predictor.0.skip.bias                -> posterior_net.network.0.skip.bias
    Generator.7.weight                            -> generator.network.7.weight

Inside a layer: the template's ResidualBlock (conv1, conv2, skip) keeps its names; its
DepthConvBlock is ``block = Sequential(DepthConv, ConvFFN)`` with DepthConv's first 1x1 conv
inside ``conv1 = Sequential(Conv2d, LeakyReLU)``: see ``_LAYER_RENAMES``.
Shapes: [B, C, H, W] in and out, every layer at full resolution.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..config import ModelConfig
from .blocks import DepthConv, GatedConvFFN, ResidualBlock
from .outputs import init_output_layer, output_channels
from .parts import BlockFactory, CVAEModules, GaussianPredictor, div, fusion_channels, last_conv

# The lab template's VAE_Model attributes -> (PoseCVAE's attribute, the template's class name): the
# one table behind reading the template's checkpoints (posecast.io.checkpoint recognises them by
# these prefixes, its LAB_MODULE_NAMES; lab_key_to_posecast renames their keys)
LAB_MODULES = {
    "frame_transformation": ("frame_encoder", "RGB_Encoder"),
    "label_transformation": ("pose_encoder", "Label_Encoder"),
    "Gaussian_Predictor": ("posterior_net", "Gaussian_Predictor"),
    "Decoder_Fusion": ("fusion", "Decoder_Fusion"),
    "Generator": ("generator", "Generator"),
}

# inside one layer: the template's layers.py names -> posecast's models/blocks.py names
_LAYER_RENAMES = (
    ("block.0.conv1.0.", "conv.conv1."),  # DepthConvBlock.block[0] is DepthConv
    ("block.0.depth_conv.", "conv.depth_conv."),
    ("block.0.conv2.", "conv.conv2."),
    ("block.0.adaptor.", "conv.adaptor."),
    ("block.1.conv.", "ffn.conv_in."),  # DepthConvBlock.block[1] is ConvFFN
    ("block.1.conv_out.", "ffn.conv_out."),
)


def _rename_layer(rest: str, renames: tuple[tuple[str, str], ...]) -> str:
    """``rest`` with the first prefix of ``renames`` that it starts with replaced (old, new)."""
    for old, new in renames:
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def lab_key_to_posecast(key: str) -> str:
    """The PoseCVAE state-dict key for one key of the template's ``state_dict``."""
    module, _, rest = key.partition(".")
    if module not in LAB_MODULES:
        raise KeyError(f"not a key of the lab's VAE_Model: {key}")
    index, _, rest = rest.partition(".")
    return f"{LAB_MODULES[module][0]}.network.{index}.{_rename_layer(rest, _LAYER_RENAMES)}"


def posecast_key_to_lab(key: str) -> str:
    """The inverse of ``lab_key_to_posecast`` (for exporting to the template's layout)."""
    ours = {v[0]: k for k, v in LAB_MODULES.items()}
    module, _, rest = key.partition(".")
    if module not in ours or not rest.startswith("network."):
        raise KeyError(f"no lab counterpart for {key}")
    index, _, rest = rest[len("network."):].partition(".")
    return f"{ours[module]}.{index}.{_rename_layer(rest, tuple((new, old) for old, new in _LAYER_RENAMES))}"


def build(cfg: ModelConfig) -> CVAEModules:
    """The template's modules with the sizes of ``cfg`` (built in its order: a seed gives the same
    weights)."""
    F, L, N, D = cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.D_dim
    block = partial(LabDepthConvBlock, gate=cfg.ffn_gate)
    frame_encoder = LabRGBEncoder(3, F, block)
    pose_encoder = LabLabelEncoder(3, L)
    posterior_net = GaussianPredictor(F + L, N, block, slope=1.0)
    fusion = LabDecoderFusion(fusion_channels(cfg), D, block)
    generator = LabGenerator(D, output_channels(cfg.output), block)
    init_output_layer(last_conv(generator), cfg.output)
    prior_net = GaussianPredictor(F + L, N, block, slope=1.0) if cfg.prior == "learned" else None
    return CVAEModules(frame_encoder, pose_encoder, posterior_net, fusion, generator, prior_net)


class LabConvFFN(GatedConvFFN):
    """The template's ConvFFN: conv_in to 4 x ch, value * leaky_relu(gate), conv_out; with
    ``gate="sigmoid"`` the bounded gate of GatedConvFFN."""

    def __init__(self, ch: int, gate: str = "relu") -> None:
        super().__init__(ch, gate=gate, hidden=4 * ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate == "sigmoid":
            return super().forward(x)
        value, gate = self.halves(x)
        return x + self.conv_out(value * self.act(gate))


class LabDepthConvBlock(nn.Module):
    """The template's DepthConvBlock: DepthConv, then its ConvFFN (keys as in blocks.DepthConvBlock)."""

    def __init__(self, in_ch: int, out_ch: int, gate: str = "relu") -> None:
        super().__init__()
        self.conv = DepthConv(in_ch, out_ch)
        self.ffn = LabConvFFN(out_ch, gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.conv(x))


def _alternating(even: BlockFactory, odd: BlockFactory, channels: list[int]) -> list[nn.Module]:
    """The template's progressions: layer i maps channels[i] -> channels[i + 1] and is an ``even``
    block for even i, an ``odd`` one for odd i (so the layer indices, and the lab keys, stay put)."""
    return [(even if i % 2 == 0 else odd)(c_in, c_out)
            for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]))]


class LabRGBEncoder(nn.Module):
    """The template's RGB_Encoder: [B, 3, H, W] -> [B, F, H, W] through F/8, F/4, F/2 channels."""

    def __init__(self, in_ch: int, out_ch: int, block: BlockFactory = LabDepthConvBlock) -> None:
        super().__init__()
        c8, c4, c2 = div(out_ch, 8), div(out_ch, 4), div(out_ch, 2)
        self.network = nn.Sequential(*_alternating(ResidualBlock, block, [in_ch, c8, c8, c4, c4, c2, c2]),
                                     nn.Conv2d(c2, out_ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class LabLabelEncoder(nn.Module):
    """The template's Label_Encoder: reflect-pad 3, 7x7 conv, BatchNorm, an identity activation
    (nn.LeakyReLU(True) has negative_slope 1), a residual block. [B, 3, H, W] -> [B, L, H, W]."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        half = div(out_ch, 2)
        self.network = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(in_ch, half, 7), nn.BatchNorm2d(half),
            nn.LeakyReLU(negative_slope=1.0), ResidualBlock(half, out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class LabDecoderFusion(nn.Module):
    """The template's Decoder_Fusion: cat(features) [B, in, H, W] -> in/4 -> in/2 -> out/2 -> out."""

    def __init__(self, in_ch: int, out_ch: int, block: BlockFactory = LabDepthConvBlock) -> None:
        super().__init__()
        c4, c2, o2 = div(in_ch, 4), div(in_ch, 2), div(out_ch, 2)
        self.network = nn.Sequential(*_alternating(block, ResidualBlock, [in_ch, in_ch, c4, c2, c2, o2]),
                                     nn.Conv2d(o2, out_ch, 1))

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.network(torch.cat(features, dim=1))


class LabGenerator(nn.Module):
    """The template's Generator: [B, in, H, W] -> in/2 -> in/4 -> in/8 -> logits [B, out, H, W]."""

    def __init__(self, in_ch: int, out_ch: int, block: BlockFactory = LabDepthConvBlock) -> None:
        super().__init__()
        c2, c4, c8 = div(in_ch, 2), div(in_ch, 4), div(in_ch, 8)
        self.network = nn.Sequential(*_alternating(block, ResidualBlock, [in_ch, in_ch, c2, c2, c4, c4, c8, c8]),
                                     nn.Conv2d(c8, out_ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)
