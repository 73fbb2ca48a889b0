"""What a rollout must beat: copying frame 0 forward, and the sequence's median frame.

Both score frames 1..T-1 like a rollout does. Copying frame 0 is right wherever nothing moves;
the per-pixel median over the sequence is, for a dancer who moves about, close to the empty
background. A model that does not beat both has learnt nothing about the person.
"""
from __future__ import annotations

import torch

from ..metrics import psnr


def copy_first(frames: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR of frame 0 against frames 1..T-1. frames: [T, 3, H, W] in [0, 1] -> [T-1]."""
    return psnr(frames[:1].expand_as(frames[1:]), frames[1:])


def median_frame(frames: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR of the per-pixel median of frames 0..T-1 against frames 1..T-1 -> [T-1]."""
    med = frames.median(dim=0).values
    return psnr(med.expand_as(frames[1:]), frames[1:])


def baseline_psnrs(frames: torch.Tensor) -> dict[str, float]:
    """Mean PSNR of both baselines over frames 1..T-1 of one sequence [T, 3, H, W] in [0, 1]."""
    return {"copy_first": float(copy_first(frames).mean()), "median_frame": float(median_frame(frames).mean())}
