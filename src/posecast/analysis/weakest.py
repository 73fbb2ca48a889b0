"""The weakest frames of a scored rollout, to look at: which they are, and a sheet of their
prediction, ground truth, pose and error (what `posecast evaluate` writes as weakest_frames.png)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..data.lab import VideoSequence
from ..perf import to_float
from ..rollout import SequenceEval
from .plots import save_figure


@dataclass(frozen=True)
class WeakFrame:
    """One scored frame: its sequence (index into the evaluation's, and name), its frame index in
    the sequence (1 = the first predicted) and its PSNR (mean over the samples)."""

    seq: int
    name: str
    frame: int
    psnr: float


def weakest_frames(ev: SequenceEval, k: int = 6) -> list[WeakFrame]:
    """The ``k`` frames of lowest PSNR over all sequences (mean over samples), weakest first; ties
    in sequence then frame order. A frame whose PSNR is NaN (a rollout that diverged) comes first."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    per_frame = ev.psnr.mean(0)  # [B, T-1]
    flat = per_frame.flatten().tolist()
    order = sorted(range(len(flat)), key=lambda i: (0, 0.0, i) if math.isnan(flat[i]) else (1, flat[i], i))[:k]
    steps = per_frame.shape[1]
    return [WeakFrame(i // steps, ev.names[i // steps], i % steps + 1, float(flat[i])) for i in order]


def _image(x: torch.Tensor) -> np.ndarray:
    """[3, H, W] float in [0, 1] -> [H, W, 3] for imshow."""
    return x.float().clamp(0, 1).permute(1, 2, 0).numpy()


def figure_weakest(ev: SequenceEval, seqs: list[VideoSequence], frames: list[WeakFrame]) -> Figure:
    """One column per frame (weakest first): the prediction (the first sample), the ground truth,
    the pose image, and the absolute error of that prediction (mean over the colours, 0 to 0.5 and
    above); each titled with the frame's PSNR (the mean over the samples)."""
    rows = ["prediction", "ground truth", "pose", "|error|"]
    H, W = ev.pred.shape[-2:]
    cell = 2.2
    fig = Figure(figsize=(cell * len(frames), cell * H / W * len(rows) + 0.8))
    axes = fig.subplots(len(rows), len(frames), squeeze=False)
    for c, f in enumerate(frames):
        pred = ev.pred[0, f.seq, f.frame]
        truth = to_float(seqs[f.seq].frames[f.frame])
        pose = to_float(seqs[f.seq].poses[f.frame])
        err = (pred - truth).abs().mean(0).numpy()
        for r, shown in enumerate([_image(pred), _image(truth), _image(pose), err]):
            ax = axes[r, c]
            ax.imshow(shown, cmap="magma" if r == 3 else None, vmin=0, vmax=0.5 if r == 3 else 1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(rows[r], fontsize=8)
        axes[0, c].set_title(f"{f.name} frame {f.frame}\n{f.psnr:.2f} dB", fontsize=8)
    K = ev.psnr.shape[0]
    shown = "" if K == 1 else f" (PSNR: mean of {K} samples; the first sample shown)"
    fig.suptitle(f"The {len(frames)} weakest frames of the rollout{shown}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_weakest(ev: SequenceEval, seqs: list[VideoSequence], path: str | Path, k: int = 6) -> list[WeakFrame]:
    """Write the sheet of the ``k`` weakest frames to ``path`` (PNG); returns those frames."""
    frames = weakest_frames(ev, min(k, ev.psnr[0].numel()))
    save_figure(figure_weakest(ev, seqs, frames), path)
    return frames
