"""The one rollout used for validation/evaluation/prediction, and its per-frame tables
(write_frame_csv: the trainer's validation and `posecast evaluate`)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from posecast.data.lab import VideoSequence, load_split, load_test
from posecast.inference.load import load_model
from posecast.metrics import psnr
from posecast.perf import to_float
from posecast.rollout import (FIRST_SAMPLE, OVER_SAMPLES, SequenceEval, evaluate_sequences, predict,
                              validation_rollout, write_frame_csv)
from posecast.training.run import Run
from posecast_testing import SYNTH


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


def test_evaluate_sequences_rejects_what_it_cannot_score(trained_run, seqs, synth_root: Path, tmp_path) -> None:
    model = trained_run[0].model
    with pytest.raises(ValueError, match="no sequences"):
        evaluate_sequences(model, [])
    with pytest.raises(ValueError, match="val"):
        evaluate_sequences(model, seqs[:1], length=SYNTH["val_len"] + 1)
    no_gt = VideoSequence("x", seqs[1].frames[:1], seqs[1].poses, has_gt=False)
    with pytest.raises(ValueError, match="ground truth"):
        evaluate_sequences(model, [no_gt])


def test_mirror_average_is_the_mean_of_the_rollout_and_its_mirror(trained_run, seqs) -> None:
    """inference.mirror_average: the rollout averaged with the mirrored inputs' rollout mirrored
    back; frame 0 stays the given frame; the result is mirror-equivariant."""
    model = trained_run[0].model
    T = 6
    first = torch.stack([to_float(s.frames[0]) for s in seqs])
    poses = torch.stack([s.poses[:T] for s in seqs])
    plain = predict(model, first, poses, z_mode="zero")
    flipped = predict(model, first.flip(-1), poses.flip(-1), z_mode="zero").flip(-1)
    assert not torch.allclose(plain, flipped, atol=1e-3)  # the tiny model is not symmetric by itself
    both = predict(model, first, poses, z_mode="zero", mirror=True)
    assert both.shape == plain.shape
    assert torch.allclose(both, (plain + flipped) / 2, atol=1e-5)
    assert torch.equal(both[:, 0], first)
    mirrored = predict(model, first.flip(-1), poses.flip(-1), z_mode="zero", mirror=True)
    assert torch.allclose(mirrored.flip(-1), both, atol=1e-5)  # mirroring the inputs mirrors the output
    ev = evaluate_sequences(model, seqs, length=T, z_mode="zero", mirror=True)
    assert torch.allclose(ev.pred[0], both, atol=1e-5)
    sampled = predict(model, first, poses, z_mode="prior", seed=3, mirror=True)
    assert torch.equal(sampled, predict(model, first, poses, z_mode="prior", seed=3, mirror=True))  # seeded


def test_validation_rollout_is_the_trainer_s(trained_run, synth_root: Path) -> None:
    """Rolled out again from last.ckpt, the validation rollout scores what the trainer logged."""
    run = Run(trained_run[1])
    model, cfg = load_model(run.last_ckpt)
    ev = validation_rollout(model, [load_split(synth_root, "val")], cfg)
    _, rows = run.read_log()
    assert ev.psnr.shape[-1] == min(cfg.data.val_vi_len, SYNTH["val_len"]) - 1
    assert ev.mean_psnr == pytest.approx(float(rows[-1]["val_psnr"]), rel=1e-6)
    assert ev.mean_ssim == pytest.approx(float(rows[-1]["val_ssim"]), rel=1e-6)


def test_validation_rollout_arguments_replace_the_config(trained_run, seqs) -> None:
    model, cfg = trained_run[0].model, trained_run[0].cfg
    got = validation_rollout(model, seqs, cfg, length=5, samples=2, seed=3, z_mode="zero", mirror=True)
    want = evaluate_sequences(model, seqs, length=5, samples=2, seed=3, z_mode="zero", mirror=True,
                              precision=cfg.runtime.precision)
    assert torch.equal(got.pred, want.pred) and torch.equal(got.psnr, want.psnr)
    default = validation_rollout(model, seqs, cfg, length=5)
    assert torch.equal(default.pred, evaluate_sequences(model, seqs, length=5, z_mode=cfg.inference.z_infer,
                                                        seed=cfg.runtime.seed, precision=cfg.runtime.precision,
                                                        mirror=cfg.inference.mirror_average).pred)


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
