"""Plots (matplotlib, Agg): PSNR per frame and the training curves."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_psnr_per_frame(curves: dict[str, np.ndarray], path: str | Path, *,
                        title: str = "PSNR per frame of the validation rollout") -> Path:
    """One curve per name (PSNR in dB for frames 1..T-1) with its mean as a dashed line."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (name, psnr) in enumerate(curves.items()):
        psnr = np.asarray(psnr, dtype=float)
        x = np.arange(1, len(psnr) + 1)
        line, = ax.plot(x, psnr, lw=1.2, label=f"{name} (mean {psnr.mean():.2f} dB)")
        ax.axhline(psnr.mean(), color=line.get_color(), ls="--", lw=1)
    ax.set_xlabel("frame index")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
