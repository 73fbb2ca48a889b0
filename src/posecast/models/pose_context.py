"""``model.pose_context: k``: each step reads the pose images of its k neighbouring frames on either
side beside its own, 3 (2k + 1) channels in time order (t - k .. t + k), the indices clamped at the
sequence's ends. A label drawn a few pixels off its dancer, or one with the skeleton missing (a
dancer half out of the frame), is then one of several views of the same moment: the neighbours
carry what it lacks.

The stacking is done once per sequence (the trainer's clips and anchors are gathered from the
stacked train sequence, so a clip's frames see neighbours outside the clip); the model's forward
and rollout accept either plain pose images [.., 3, H, W], which they stack within what they were
given, or poses already stacked.
"""
from __future__ import annotations

import torch


def context_channels(k: int) -> int:
    """The pose encoder's input channels for ``k`` neighbours on each side."""
    return 3 * (2 * k + 1)


def stack_pose_context(poses: torch.Tensor, k: int) -> torch.Tensor:
    """Pose images [B, T, 3, H, W] -> [B, T, 3 (2k + 1), H, W]: step t holds the images of steps
    t - k .. t + k (clamped to 0 .. T - 1), in that order. Already stacked poses are returned as
    they are; k = 0 returns ``poses``."""
    if k == 0:
        return poses
    c = poses.shape[-3]
    if c == context_channels(k):
        return poses
    if c != 3 or poses.dim() != 5:
        raise ValueError(f"model.pose_context {k}: pose images [B, T, 3, H, W] or [B, T, {context_channels(k)}, "
                         f"H, W] (already stacked), got {tuple(poses.shape)}")
    T = poses.shape[1]
    steps = torch.arange(T, device=poses.device)
    idx = (steps[:, None] + torch.arange(-k, k + 1, device=poses.device)).clamp(0, T - 1)  # [T, 2k + 1]
    return poses[:, idx].flatten(2, 3)  # [B, T, 2k + 1, 3, H, W] -> [B, T, 3 (2k + 1), H, W]


def single_pose_context(pose: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """One frame's pose image [B, 3, H, W] with no neighbours given (an anchor's, a first frame's):
    itself 2k + 1 times, as a one-frame sequence clamps; stacked ones and None pass through."""
    if pose is None or k == 0 or pose.shape[-3] == context_channels(k):
        return pose
    return stack_pose_context(pose[:, None], k)[:, 0]
