"""evaluate() from a checkpoint: its summary (best of N), CSV, plot, videos and summary.json."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from posecast.analysis.evaluate import _summary, evaluate
from posecast.data.lab import DataError
from posecast.rollout import SequenceEval
from posecast_testing import SYNTH, write_split


def test_best_of_n_summary() -> None:
    p = torch.tensor([[[10.0, 12.0], [30.0, 30.0]], [[20.0, 22.0], [20.0, 20.0]]])  # [K=2, B=2, T-1=2]
    ev = SequenceEval(["a", "b"], torch.zeros(2, 2, 3, 3, 1, 1), p, torch.ones_like(p))
    s = _summary(ev, 3)
    assert s["mean_psnr"] == pytest.approx(20.5)
    assert s["best_of_n_psnr"] == pytest.approx((21.0 + 30.0) / 2)  # best sample per sequence
    assert s["per_sequence_psnr"] == {"a": pytest.approx(16.0), "b": pytest.approx(25.0)}
    assert s["min_psnr"] == pytest.approx(15.0) and s["frames"] == 3 and s["samples"] == 2


@pytest.mark.slow
def test_evaluate_writes_every_output(tiny_checkpoint: Path, synth_root: Path, tmp_path: Path) -> None:
    s = evaluate(tiny_checkpoint, synth_root, tmp_path / "ev", split="test", samples=2, video=True)
    names = sorted(p.name for p in (tmp_path / "ev").iterdir())
    assert names == ["psnr_per_frame.csv", "psnr_per_frame.png", "summary.json", "test_0.gif", "test_0.mp4",
                     "test_1.gif", "test_1.mp4", "weakest_frames.png"]
    assert json.loads((tmp_path / "ev" / "summary.json").read_text()) == s
    assert s["frames"] == SYNTH["test_len"] and s["sequences"] == ["test_0", "test_1"] and s["samples"] == 2
    assert s["best_of_n_psnr"] >= s["mean_psnr"]
    with (tmp_path / "ev" / "psnr_per_frame.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (SYNTH["test_len"] - 1)
    assert all(float(r["psnr_max"]) >= float(r["psnr_mean"]) - 1e-4 for r in rows)
    lowest = min(rows, key=lambda r: float(r["psnr_mean"]))  # the sheet's first frame is the CSV's weakest
    first = s["weakest_frames"][0]
    assert (first["name"], first["frame"]) == (lowest["sequence"], int(lowest["frame"]))
    assert first["psnr"] == pytest.approx(float(lowest["psnr_mean"]), abs=1e-3)
    short = evaluate(tiny_checkpoint, synth_root, tmp_path / "short", length=5, video=False)
    assert short["frames"] == 5 and sorted(p.name for p in (tmp_path / "short").iterdir()) == \
        ["psnr_per_frame.csv", "psnr_per_frame.png", "summary.json", "weakest_frames.png"]


def test_evaluate_needs_two_frames(tiny_checkpoint: Path, tmp_path: Path) -> None:
    write_split(tmp_path, "val", 1)
    with pytest.raises(DataError, match=str(tmp_path / "val")):
        evaluate(tiny_checkpoint, tmp_path, tmp_path / "ev", video=False)
