"""How the generator's output becomes a frame (``model.output``). Shapes: [B, C, H, W].

direct (the lab: sigmoid of the generator), residual (a change of the previous frame in logit
space), masked (a mask m blends new pixels with the previous frame: m * rgb + (1 - m) * prev),
masked_first (the same with the first frame), composite (softmax weights per pixel over new
pixels, the previous and the first frame).
"""
from __future__ import annotations

import torch

_LOGIT_EPS = 1e-3
_CHANNELS = {"masked": 4, "masked_first": 4, "composite": 6}


def output_channels(mode: str) -> int:
    """The generator's output channels for an output mode: RGB, plus a mask or two weights."""
    return _CHANNELS.get(mode, 3)


def compose_frame(mode: str, out: torch.Tensor, prev_frame: torch.Tensor,
                  first_frame: torch.Tensor | None) -> torch.Tensor:
    """The frame in [0, 1] from the generator's logits ``out`` [B, output_channels(mode), H, W]."""
    if mode.startswith("masked"):
        base = first_frame if mode == "masked_first" else prev_frame
        rgb, mask = torch.sigmoid(out[:, :3]), torch.sigmoid(out[:, 3:4])
        return mask * rgb + (1 - mask) * base
    if mode == "composite":
        base = prev_frame if first_frame is None else first_frame
        w = torch.softmax(out[:, 3:6].float(), dim=1).to(out.dtype)
        return w[:, 0:1] * torch.sigmoid(out[:, :3]) + w[:, 1:2] * prev_frame + w[:, 2:3] * base
    if mode == "residual":
        # the generator predicts the change in logit space: out = 0 copies the previous frame
        base = torch.logit(prev_frame.clamp(_LOGIT_EPS, 1 - _LOGIT_EPS))
        return torch.sigmoid(base + out)
    return torch.sigmoid(out)
