"""One rollout for validation, evaluation, prediction and the demo, and its per-frame scores.

It sits below training and inference, which both use it: :func:`predict` rolls sequences out,
:func:`validation_rollout` rolls out and scores them as the trainer's validation does (the
trainer, ``posecast evaluate``, the report and the benchmarks call it), :func:`write_frame_csv`
writes the scores per frame.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .config import Config
from .data.lab import VideoSequence
from .io.atomic import atomic_write_bytes
from .metrics import psnr, ssim
from .models import PoseCVAE
from .perf import autocast, resolve_precision, to_float


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
    model.eval()  # the lab pose encoder's BatchNorm (model.arch: lab) must use its running statistics
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


def validation_rollout(model: PoseCVAE, seqs: list[VideoSequence], cfg: Config, *, length: int | None = None,
                       samples: int = 1, seed: int | None = None, z_mode: str | None = None,
                       precision: str | None = None, mirror: bool | None = None,
                       with_ssim: bool = True) -> SequenceEval:
    """The rollout the trainer validates with, scored: every sequence from its frame 0 for
    ``length`` frames (default: ``data.val_vi_len``, at most the shortest sequence), z from
    ``inference.z_infer``, noise seeded by ``runtime.seed``, ``runtime.precision`` and
    ``inference.mirror_average``; each argument given replaces the config's value."""
    if length is None:
        length = min(cfg.data.val_vi_len, min((len(s) for s in seqs), default=0))
    return evaluate_sequences(model, seqs, length=length, z_mode=z_mode or cfg.inference.z_infer,
                              seed=cfg.runtime.seed if seed is None else seed, samples=samples,
                              precision=precision or cfg.runtime.precision, with_ssim=with_ssim,
                              mirror=cfg.inference.mirror_average if mirror is None else mirror)


# -- per-frame scores as CSV -------------------------------------------------------------------
# column -> (metric, reduction over the samples); the trainer's val/epoch_NNN.csv has the first
# sample's scores (what posecast.analysis.plots.load_run reads), `posecast evaluate`'s
# psnr_per_frame.csv the mean and the best over its samples
FIRST_SAMPLE = {"psnr": ("psnr", "first"), "ssim": ("ssim", "first")}
OVER_SAMPLES = {"psnr_mean": ("psnr", "mean"), "ssim_mean": ("ssim", "mean"),
                "psnr_max": ("psnr", "max"), "ssim_max": ("ssim", "max")}

_REDUCE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "first": lambda x: x[0], "mean": lambda x: x.mean(0), "max": lambda x: x.amax(0)}
_DIGITS = {"psnr": 4, "ssim": 5}


def write_frame_csv(path: str | Path, ev: SequenceEval,
                    columns: dict[str, tuple[str, str]] = OVER_SAMPLES) -> Path:
    """Write ``sequence, frame`` (frames from 1: frame 0 is given) and ``columns`` for every
    predicted frame of every sequence of ``ev``, atomically; returns the path."""
    path = Path(path)
    values = {col: _REDUCE[how](getattr(ev, metric)) for col, (metric, how) in columns.items()}  # [B, T-1]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["sequence", "frame", *columns])
    for b, name in enumerate(ev.names):
        for j in range(ev.psnr.shape[-1]):
            w.writerow([name, j + 1, *(f"{float(values[col][b, j]):.{_DIGITS[metric]}f}"
                                       for col, (metric, _) in columns.items())])
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue().encode()))
    return path
