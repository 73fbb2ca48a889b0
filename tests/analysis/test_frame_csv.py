"""write_frame_csv: the per-frame tables of the trainer's validation and of `posecast evaluate`."""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from posecast.analysis.frame_csv import FIRST_SAMPLE, OVER_SAMPLES, write_frame_csv
from posecast.inference.rollout import SequenceEval


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _eval() -> SequenceEval:
    p = torch.tensor([[[10.0, 12.0], [30.0, 31.0]], [[20.0, 22.5], [20.0, 20.0]]])  # [K=2, B=2, T-1=2]
    s = torch.tensor([[[0.5, 0.25], [0.75, 0.125]], [[0.25, 0.5], [0.5, 0.5]]])
    return SequenceEval(["a", "b"], torch.zeros(2, 2, 3, 3, 1, 1), p, s)


def test_over_samples_mean_and_max(tmp_path: Path) -> None:
    path = write_frame_csv(tmp_path / "psnr_per_frame.csv", _eval(), OVER_SAMPLES)
    rows = _rows(path)
    assert list(rows[0]) == ["sequence", "frame", "psnr_mean", "ssim_mean", "psnr_max", "ssim_max"]
    assert rows[0] == {"sequence": "a", "frame": "1", "psnr_mean": "15.0000", "ssim_mean": "0.37500",
                       "psnr_max": "20.0000", "ssim_max": "0.50000"}
    assert [(r["sequence"], r["frame"]) for r in rows] == [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")]
    assert rows[3]["psnr_mean"] == "25.5000" and rows[3]["ssim_max"] == "0.50000"


def test_first_sample_is_the_trainer_s_table(tmp_path: Path) -> None:
    rows = _rows(write_frame_csv(tmp_path / "epoch_000.csv", _eval(), FIRST_SAMPLE))
    assert list(rows[0]) == ["sequence", "frame", "psnr", "ssim"]
    assert [(r["psnr"], r["ssim"]) for r in rows] == [("10.0000", "0.50000"), ("12.0000", "0.25000"),
                                                     ("30.0000", "0.75000"), ("31.0000", "0.12500")]
