"""The one rollout used for validation/evaluation/prediction, and evaluate() from a checkpoint."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from posecast.data.lab import DataError, VideoSequence, load_split, load_test
from posecast.evaluation.evaluate import _summary, evaluate
from posecast.evaluation.metrics import psnr
from posecast.evaluation.rollout import SequenceEval, evaluate_sequences, predict
from posecast.perf import to_float
from posecast_testing import SYNTH, write_split


@pytest.fixture(scope="module")
def seqs(synth_root: Path) -> list[VideoSequence]:
    return [load_split(synth_root, "val")] + load_test(synth_root)


def test_to_float() -> None:
    u = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(to_float(u), torch.tensor([0.0, 0.2, 1.0]))
    f = torch.rand(3)
    assert torch.equal(to_float(f), f)


def test_evaluate_sequences_scores_each_frame(trained_run, seqs) -> None:
    model = trained_run[0].model
    T = SYNTH["test_len"]
    ev = evaluate_sequences(model, seqs, length=T, samples=2, seed=4)
    B = len(seqs)
    assert ev.names == ["val", "test_0", "test_1"]
    assert ev.pred.shape == (2, B, T, 3, 32, 64)
    assert ev.psnr.shape == ev.ssim.shape == (2, B, T - 1)
    first = torch.stack([to_float(s.frames[0]) for s in seqs])
    truth = torch.stack([to_float(s.frames[:T]) for s in seqs])
    for k in range(2):
        assert torch.equal(ev.pred[k, :, 0], first)  # frame 0 is given, not scored
        assert torch.allclose(ev.psnr[k], psnr(ev.pred[k, :, 1:], truth[:, 1:]))
        # sample k is the rollout with seed + k, all sequences in one batch
        poses = torch.stack([s.poses[:T] for s in seqs])
        assert torch.equal(ev.pred[k], predict(model, first, poses, seed=4 + k))
    assert not torch.equal(ev.pred[0], ev.pred[1])
    assert ev.mean_psnr == pytest.approx(float(ev.psnr.mean()))
    assert ev.min_psnr == pytest.approx(float(ev.psnr.mean(0).min()))
    assert 0 < ev.mean_ssim <= 1
    # the same seed gives the same scores
    again = evaluate_sequences(model, seqs, length=T, samples=2, seed=4, with_ssim=False)
    assert torch.equal(again.psnr, ev.psnr) and torch.isnan(again.ssim).all()


def test_best_of_n_summary() -> None:
    p = torch.tensor([[[10.0, 12.0], [30.0, 30.0]], [[20.0, 22.0], [20.0, 20.0]]])  # [K=2, B=2, T-1=2]
    ev = SequenceEval(["a", "b"], torch.zeros(2, 2, 3, 3, 1, 1), p, torch.ones_like(p))
    s = _summary(ev, 3)
    assert s["mean_psnr"] == pytest.approx(20.5)
    assert s["best_of_n_psnr"] == pytest.approx((21.0 + 30.0) / 2)  # best sample per sequence
    assert s["per_sequence_psnr"] == {"a": pytest.approx(16.0), "b": pytest.approx(25.0)}
    assert s["min_psnr"] == pytest.approx(15.0) and s["frames"] == 3 and s["samples"] == 2


def test_evaluate_sequences_rejects_what_it_cannot_score(trained_run, seqs, synth_root: Path, tmp_path) -> None:
    model = trained_run[0].model
    with pytest.raises(ValueError, match="no sequences"):
        evaluate_sequences(model, [])
    with pytest.raises(ValueError, match="val"):
        evaluate_sequences(model, seqs[:1], length=SYNTH["val_len"] + 1)
    no_gt = VideoSequence("x", seqs[1].frames[:1], seqs[1].poses, has_gt=False)
    with pytest.raises(ValueError, match="ground truth"):
        evaluate_sequences(model, [no_gt])


@pytest.mark.slow
def test_evaluate_writes_every_output(tiny_checkpoint: Path, synth_root: Path, tmp_path: Path) -> None:
    s = evaluate(tiny_checkpoint, synth_root, tmp_path / "ev", split="test", samples=2, video=True)
    names = sorted(p.name for p in (tmp_path / "ev").iterdir())
    assert names == ["psnr_per_frame.csv", "psnr_per_frame.png", "summary.json", "test_0.gif", "test_0.mp4",
                     "test_1.gif", "test_1.mp4"]
    assert json.loads((tmp_path / "ev" / "summary.json").read_text()) == s
    assert s["frames"] == SYNTH["test_len"] and s["sequences"] == ["test_0", "test_1"] and s["samples"] == 2
    assert s["best_of_n_psnr"] >= s["mean_psnr"]
    with (tmp_path / "ev" / "psnr_per_frame.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (SYNTH["test_len"] - 1)
    assert all(float(r["psnr_max"]) >= float(r["psnr_mean"]) - 1e-4 for r in rows)
    short = evaluate(tiny_checkpoint, synth_root, tmp_path / "short", length=5, video=False)
    assert short["frames"] == 5 and sorted(p.name for p in (tmp_path / "short").iterdir()) == \
        ["psnr_per_frame.csv", "psnr_per_frame.png", "summary.json"]


def test_evaluate_needs_two_frames(tiny_checkpoint: Path, tmp_path: Path) -> None:
    write_split(tmp_path, "val", 1)
    with pytest.raises(DataError, match=str(tmp_path / "val")):
        evaluate(tiny_checkpoint, tmp_path, tmp_path / "ev", video=False)
