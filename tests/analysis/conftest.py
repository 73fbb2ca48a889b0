"""Fixtures for the analysis tests: a tiny dataset, one tiny trained run, and hand-written logs.

Hand-written logs ("fabricated" runs) have the exact layout the trainer writes (config.yaml,
metrics.csv with run.METRIC_FIELDS, val/epoch_NNN.csv) and known values, so that a test can
check that a plot shows exactly what was logged.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from posecast import config as cfgmod
from posecast.training.run import METRIC_FIELDS
from posecast.training.schedules import Schedules
from posecast.training.trainer import Trainer

# validation PSNR per epoch of a fabricated run (plus its offset): best 2.0 twice, the last wins
PSNR_SHAPE = [0.0, 1.0, 2.0, 1.5, 2.0, 1.0, 0.5, 0.2]


def tiny_cfg(**over: Any) -> cfgmod.Config:
    """The tiny preset, 2 epochs (the teacher-forcing decay starting at epoch 1)."""
    return cfgmod.override(cfgmod.preset("tiny"), num_epoch=2, **over)


@pytest.fixture(scope="session")
def analysis_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from posecast.data.synth import write_synthetic_dataset

    # 8 training frames = 2 clips of 4 = one batch per epoch; 8 validation frames
    return write_synthetic_dataset(tmp_path_factory.mktemp("data"), train_sequences=1, train_len=8,
                                   val_len=8, test_len=4)


@pytest.fixture(scope="session")
def analysis_run(tmp_path_factory: pytest.TempPathFactory, analysis_data: Path) -> Path:
    """A real run of the tiny preset (2 epochs) as `posecast train` leaves it, data_path.txt included."""
    run = tmp_path_factory.mktemp("trained") / "tiny-run"
    run.mkdir()
    (run / "data_path.txt").write_text(str(analysis_data.resolve()))
    Trainer(tiny_cfg(), analysis_data, run, progress=False, log=lambda s: None).fit()
    return run


def fabricate_run(folder: Path, cfg: cfgmod.Config, *, steps: int = 3, val_every: int = 1, frames: int = 10,
                  offset: float = 0.0, sequences: tuple[str, ...] = ("val",)) -> dict[str, Any]:
    """Write a run folder with known values; returns {'rows': [...], 'frames': {epoch: {seq: psnr}}}."""
    folder.mkdir(parents=True)
    cfg.to_yaml(folder / "config.yaml")
    sched = Schedules(cfg, steps)
    n = cfg.optim.num_epoch
    rows: list[dict[str, Any]] = []
    per_frame: dict[int, dict[str, np.ndarray]] = {}
    elapsed = 0.0
    for e in range(n):
        beta, tfr = sched.beta(e), sched.tfr(e)
        mse, kl = 0.5 / (e + 1) + offset / 100, 100.0 / (e + 1) + 10 * offset
        elapsed += 1.5 + e
        row: dict[str, Any] = {"epoch": e, "step": steps * (e + 1), "lr": 1e-3, "tfr": tfr, "beta": beta,
                               "teacher_forced": 1.0 if e % 3 != 2 else 0.0, "train_loss": mse + beta * kl,
                               "train_mse": mse, "train_kl": kl, "epoch_time": 1.5 + e, "elapsed": elapsed}
        if (e + 1) % val_every == 0 or e + 1 == n:
            psnr = 20.0 + offset + PSNR_SHAPE[e % len(PSNR_SHAPE)]
            row.update(val_loss=2 * mse + beta * kl, val_mse=2 * mse, val_kl=kl, val_psnr=psnr,
                       val_ssim=0.5 + psnr / 100, val_psnr_min=psnr - 1)
            curves = {}
            for k, s in enumerate(sequences):  # mean over frames and sequences = val_psnr
                curves[s] = psnr + 0.3 * (k - (len(sequences) - 1) / 2) - 0.2 * (np.arange(frames) - (frames - 1) / 2)
            per_frame[e] = curves
            (folder / "val").mkdir(exist_ok=True)
            with (folder / "val" / f"epoch_{e:03d}.csv").open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["sequence", "frame", "psnr", "ssim"])
                for s, c in curves.items():
                    for j, v in enumerate(c):
                        w.writerow([s, j + 1, f"{v:.4f}", f"{0.6 - 0.01 * j:.5f}"])
        rows.append(row)
    with (folder / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        w.writeheader()
        w.writerows(rows)
    return {"rows": rows, "frames": per_frame, "path": folder}


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """make_run(name, cfg, **kw): a fabricated run folder under tmp_path/runs/."""
    def make(name: str, cfg: cfgmod.Config, **kw: Any) -> dict[str, Any]:
        return fabricate_run(tmp_path / "runs" / name, cfg, **kw)
    return make
