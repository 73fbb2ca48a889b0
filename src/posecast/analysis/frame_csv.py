"""Per-frame scores of a rollout as CSV: one row per sequence and predicted frame."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from ..training.checkpoint import atomic_write_bytes

if TYPE_CHECKING:
    from ..inference.rollout import SequenceEval

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
