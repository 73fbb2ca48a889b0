"""``model.pose_context: k``: each step reads the pose images of its k neighbouring frames on either
side beside its own, 3 (2k + 1) channels in time order (t - k .. t + k), the indices clamped at the
sequence's ends. A label drawn a few pixels off its dancer, or one with the skeleton missing (a
dancer half out of the frame), is then one of several views of the same moment: the neighbours
carry what it lacks.

The trainer gathers each clip's and anchor's poses with their neighbours in the whole sequence
(``data.sampling.gather_poses``), so a clip's frames see neighbours outside the clip; the model's
forward and rollout accept either plain pose images [.., 3, H, W], which they stack within what
they were given, or poses already stacked.
"""
from __future__ import annotations

import torch

from ..data.sampling import context_index


def context_channels(k: int) -> int:
    """The pose encoder's input channels for ``k`` neighbours on each side."""
    return 3 * (2 * k + 1)


def pose_window(poses: torch.Tensor, start: int, end: int, k: int) -> torch.Tensor:
    """Steps ``start`` .. ``end - 1`` of pose images [B, T, 3, H, W], each stacked with its k
    neighbours on either side from the whole sequence (steps t - k .. t + k, clamped to 0 .. T - 1,
    in that order): [B, end - start, 3 (2k + 1), H, W]. Already stacked poses, and k = 0, give the
    slice as it is. A rollout stacks one chunk of steps at a time, so the stacked copy of a long
    sequence is never held whole."""
    c = poses.shape[-3]
    if k == 0 or c == context_channels(k):
        return poses[:, start:end]
    if c != 3 or poses.dim() != 5:
        raise ValueError(f"model.pose_context {k}: pose images [B, T, 3, H, W] or [B, T, {context_channels(k)}, "
                         f"H, W] (already stacked), got {tuple(poses.shape)}")
    steps = torch.arange(start, end, device=poses.device)
    return poses[:, context_index(steps, k, poses.shape[1])].flatten(2, 3)  # [B, end - start, 3 (2k + 1), H, W]


def stack_pose_context(poses: torch.Tensor, k: int) -> torch.Tensor:
    """Pose images [B, T, 3, H, W] -> [B, T, 3 (2k + 1), H, W]: step t holds the images of steps
    t - k .. t + k (clamped to 0 .. T - 1), in that order (:func:`pose_window` over all steps).
    Already stacked poses are returned as they are; k = 0 returns ``poses``."""
    if k == 0 or poses.shape[-3] == context_channels(k):
        return poses
    return pose_window(poses, 0, poses.shape[1], k)


def single_pose_context(pose: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """One frame's pose image [B, 3, H, W] with no neighbours given (an anchor's, a first frame's):
    itself 2k + 1 times, as a one-frame sequence clamps; stacked ones and None pass through."""
    if pose is None or k == 0 or pose.shape[-3] == context_channels(k):
        return pose
    return stack_pose_context(pose[:, None], k)[:, 0]
