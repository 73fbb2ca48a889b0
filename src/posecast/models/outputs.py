"""How the generator's output becomes a frame (``model.output``). Shapes: [B, C, H, W].

direct (the lab: sigmoid of the generator), residual (a change of the previous frame in logit
space), masked (a mask m blends new pixels with the previous frame: m * rgb + (1 - m) * prev),
masked_first (the same with the first frame), composite (softmax weights per pixel over new
pixels, the previous and the first frame), warped_first (masked_first over the first frame warped
by a flow the generator predicts: the person's own pixels carried to the target pose, new pixels
painted only where the mask says the warp cannot; as in the First Order Motion Model).

model.pose_gate R (masked_first, warped_first): the mask and the flow are multiplied by a gate that
is 1 within R pixels of where the target pose image differs from the first frame's and 0 elsewhere
(:func:`pose_change_gate`), so a frame whose pose is the first frame's is the first frame, whatever
the weights, and nothing is painted far from where the person moved.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_LOGIT_EPS = 1e-3
_CHANNELS = {"masked": 4, "masked_first": 4, "composite": 6, "warped_first": 6}
FLOW = slice(4, 6)  # warped_first: the flow's channels (dx, dy in pixels) of the generator's output
# the most pixels the flow moves: a run whose flow logits grew without bound (to 1e8 at epoch 47 of the
# recipe with warped_first) sampled only the border and never recovered; tanh keeps it finite
FLOW_MAX = 16.0
POSE_CHANGE = 0.5 / 255  # pose images are uint8 levels: a smaller difference is the same pixel


def bounded_flow(raw: torch.Tensor) -> torch.Tensor:
    """The generator's flow logits [B, 2, H, W] as pixels within +-FLOW_MAX (about the identity near 0)."""
    return FLOW_MAX * torch.tanh(raw.float() / FLOW_MAX)


def pose_change_gate(pose: torch.Tensor, first_pose: torch.Tensor, radius: int) -> torch.Tensor:
    """[B, 1, H, W] in fp32: 1 within ``radius`` pixels (a square) of any pixel where the pose images
    ``pose`` and ``first_pose`` [B, 3, H, W] differ (by more than half a uint8 level), else 0."""
    changed = ((pose.float() - first_pose.float()).abs().amax(1, keepdim=True) > POSE_CHANGE).float()
    return F.max_pool2d(changed, 2 * radius + 1, stride=1, padding=radius) if radius > 0 else changed


def output_channels(mode: str) -> int:
    """The generator's output channels for an output mode: RGB, plus a mask or two weights."""
    return _CHANNELS.get(mode, 3)


def init_output_layer(conv: nn.Conv2d, mode: str) -> None:
    """Zero the weights of the flow channels of the generator's last convolution (warped_first), so
    that a new model warps by exactly zero: it starts as masked_first does."""
    if mode == "warped_first":
        with torch.no_grad():
            conv.weight[FLOW].zero_()
            if conv.bias is not None:
                conv.bias[FLOW].zero_()


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` [B, C, H, W] sampled at (x + dx, y + dy) for each pixel, ``flow`` [B, 2, H, W]
    in pixels (bilinear, edges repeated), in fp32: zero flow returns the image."""
    B, _, H, W = image.shape
    flow = flow.float()
    xs = torch.arange(W, device=flow.device, dtype=flow.dtype)
    ys = torch.arange(H, device=flow.device, dtype=flow.dtype)
    gx = (2 * (xs + flow[:, 0]) + 1) / W - 1  # [B, H, W] in grid_sample's [-1, 1] (align_corners False)
    gy = (2 * (ys[:, None] + flow[:, 1]) + 1) / H - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def compose_frame(mode: str, out: torch.Tensor, prev_frame: torch.Tensor,
                  first_frame: torch.Tensor | None, gate: torch.Tensor | None = None) -> torch.Tensor:
    """The frame in [0, 1] from the generator's logits ``out`` [B, output_channels(mode), H, W];
    ``gate`` [B, 1, H, W] (masked_first, warped_first; :func:`pose_change_gate`) scales the mask and the flow."""
    if gate is not None and mode not in ("masked_first", "warped_first"):
        raise ValueError(f"a pose gate scales the first frame's mask or flow, and output {mode} has neither")
    if mode == "warped_first":
        flow = bounded_flow(out[:, FLOW])
        base = warp(first_frame, flow if gate is None else flow * gate)
        rgb, mask = torch.sigmoid(out[:, :3]), torch.sigmoid(out[:, 3:4])
        mask = mask if gate is None else mask * gate.to(mask.dtype)
        return mask * rgb + (1 - mask) * base
    if mode.startswith("masked"):
        base = first_frame if mode == "masked_first" else prev_frame
        rgb, mask = torch.sigmoid(out[:, :3]), torch.sigmoid(out[:, 3:4])
        mask = mask if gate is None else mask * gate.to(mask.dtype)
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
