"""The one rollout used for validation/evaluation/prediction."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posecast.analysis.metrics import psnr
from posecast.data.lab import VideoSequence, load_split, load_test
from posecast.inference.rollout import evaluate_sequences, predict
from posecast.perf import to_float
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
