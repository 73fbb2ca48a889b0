"""One rollout for validation, evaluation, prediction and the demo."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..analysis.metrics import psnr, ssim
from ..config import Config
from ..data.lab import VideoSequence
from ..models import PoseCVAE
from ..perf import autocast, resolve_precision, to_float


def rollout_precision(precision: str | None, cfg: Config, device: str) -> str:
    """The rollout's precision: the one asked for (auto | fp32 | bf16), else the config's
    ``runtime.precision``, with ``auto`` resolved for the device."""
    precision = precision or cfg.runtime.precision
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    return resolve_precision(precision, device)


@torch.inference_mode()
def predict(model: PoseCVAE, first_frames: torch.Tensor, poses: torch.Tensor, *, z_mode: str = "prior",
            seed: int | None = 0, precision: str = "fp32", mirror: bool = False) -> torch.Tensor:
    """Roll out all sequences together. first_frames [B, 3, H, W], poses [B, T, 3, H, W] (uint8 or
    float). Returns float32 [B, T, 3, H, W] in [0, 1] with frame 0 = the given first frame.

    mirror (inference.mirror_average): each sequence is also rolled out mirrored left to right, in
    the same batched call, and the two rollouts (the mirrored one mirrored back) are averaged."""
    was_training = model.training
    model.eval()  # BatchNorm/Dropout-free today, but never roll out in training mode
    device = next(model.parameters()).device
    gen = None
    if seed is not None:
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
    first, pose = to_float(first_frames).to(device), to_float(poses).to(device)
    B = first.shape[0]
    if mirror:
        first, pose = torch.cat([first, first.flip(-1)]), torch.cat([pose, pose.flip(-1)])
    try:
        with autocast(precision, device):
            out = model.rollout(first, pose, z_mode=z_mode, generator=gen)
    finally:
        model.train(was_training)
    out = out.float().clamp_(0, 1)
    if mirror:
        out = (out[:B] + out[B:].flip(-1)) / 2
        out[:, 0] = first[:B].float()  # exactly the given frame (the mean of x and x mirrored twice)
    return out


@dataclass
class SequenceEval:
    """Rollouts and per-frame metrics of a set of sequences (frames 1..T-1 are scored)."""

    names: list[str]
    pred: torch.Tensor  # [K, B, T, 3, H, W] float, K samples
    psnr: torch.Tensor  # [K, B, T-1]
    ssim: torch.Tensor  # [K, B, T-1]

    @property
    def mean_psnr(self) -> float:
        """Mean over frames, then over sequences, then over samples."""
        return float(self.psnr.mean())

    @property
    def mean_ssim(self) -> float:
        return float(self.ssim.mean())

    @property
    def min_psnr(self) -> float:
        return float(self.psnr.mean(0).min())


def evaluate_sequences(model: PoseCVAE, seqs: list[VideoSequence], *, length: int | None = None,
                       z_mode: str = "prior", seed: int = 0, samples: int = 1,
                       precision: str = "fp32", with_ssim: bool = True, mirror: bool = False) -> SequenceEval:
    """Roll out every sequence (all at once) from its frame 0 and poses; score against the truth.
    ``mirror``: see ``predict`` (inference.mirror_average).

    ``length`` truncates every sequence to that many frames. All sequences must then have the
    same length. ``samples`` rollouts with different z are drawn (seeds seed, seed+1, ...).
    """
    if not seqs:
        raise ValueError("no sequences to evaluate")
    T = min(len(s) for s in seqs) if length is None else length
    for s in seqs:
        if len(s) < T:
            raise ValueError(f"sequence {s.name} has {len(s)} frames, fewer than {T}")
        if not s.has_gt or s.frames.shape[0] < T:
            raise ValueError(f"sequence {s.name} has no ground truth to score against")
    first = torch.stack([s.frames[0] for s in seqs])
    poses = torch.stack([s.poses[:T] for s in seqs])
    truth = to_float(torch.stack([s.frames[:T] for s in seqs]))
    preds, ps, ss = [], [], []
    for k in range(samples):
        pred = predict(model, first, poses, z_mode=z_mode, seed=seed + k, precision=precision, mirror=mirror).cpu()
        preds.append(pred)
        ps.append(psnr(pred[:, 1:], truth[:, 1:]))
        ss.append(ssim(pred[:, 1:], truth[:, 1:]) if with_ssim else torch.full_like(ps[-1], float("nan")))
    return SequenceEval([s.name for s in seqs], torch.stack(preds), torch.stack(ps), torch.stack(ss))
