"""Integration: train the small preset briefly on the real dance data; the val rollout PSNR must rise.

The data (../shared/data/dance beside the repository, or $POSECAST_DANCE) is required: this test
fails, never skips, when it is missing.

Budget: 2 epochs over 30% of the train clips (2 x 9 batches of 4 clips of 16 frames) with the
validation rollout cut to 100 frames; about 1-1.5 minutes on 2 shared CPU cores. Measured with
this budget (rollout PSNR over frames 1..99, z from the prior, seed = the config's seed):

    seed 0: 13.81 dB untrained -> 16.14 dB (+2.33)    seed 1: 14.67 -> 16.51 (+1.84)
    seed 2: 13.30 -> 16.14 (+2.84)

For scale: copying frame 0 forward scores 17.6 dB on these 100 frames, the mean image 21.4 dB;
this budget is far too small to beat them, it only shows that training moves the right way.
The margin below (1 dB) is about half the smallest rise seen.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
import torch

from posecast import config as cfgmod
from posecast.analysis.evaluate import evaluate
from posecast.data.lab import load_split, load_test
from posecast.rollout import evaluate_sequences
from posecast.training.trainer import Trainer
from posecast_testing import dance_root

MARGIN_DB = 1.0
VAL_FRAMES = 100


@pytest.mark.slow
def test_real_data_layout_reads() -> None:
    root = dance_root()
    train, val = load_split(root, "train"), load_split(root, "val")
    assert train.frames.shape == train.poses.shape == (1887, 3, 32, 64)
    assert val.frames.shape == val.poses.shape == (630, 3, 32, 64)
    (test,) = load_test(root)
    assert test.name == "test_0" and test.has_gt and len(test) == 630
    # README: the test sequence is the val sequence again, with its ground truth in gt/0.npz
    assert torch.equal(test.frames, val.frames)
    assert torch.equal(test.poses[1:], val.poses[1:])


@pytest.mark.slow
def test_small_preset_training_raises_val_rollout_psnr(tmp_path: Path) -> None:
    root = dance_root()
    cfg = cfgmod.override(cfgmod.preset("small"), num_epoch=2, tfr_sde=1, kl_anneal_cycle=1, partial=0.3,
                          val_vi_len=VAL_FRAMES, val_every=2).validate()
    lines: list[str] = []
    trainer = Trainer(cfg, root, tmp_path / "run", progress=False, log=lines.append)
    t0 = time.perf_counter()
    start = evaluate_sequences(trainer.model, trainer.val_seqs, length=trainer.val_len, z_mode=cfg.inference.z_infer,
                               seed=cfg.runtime.seed, with_ssim=False).mean_psnr
    trainer.fit()
    with (tmp_path / "run" / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    end = float(rows[-1]["val_psnr"])
    took = time.perf_counter() - t0
    print(f"\nreal data, small preset, {trainer.step} steps in {took:.0f} s: val rollout PSNR "
          f"{start:.2f} dB untrained -> {end:.2f} dB ({end - start:+.2f})")
    assert end >= start + MARGIN_DB, (
        f"val rollout PSNR {start:.2f} dB before training, {end:.2f} dB after "
        f"(expected a rise of at least {MARGIN_DB} dB); log:\n" + "\n".join(lines))
    # the checkpoint evaluates to the same number through `posecast evaluate`'s code path
    summary = evaluate(tmp_path / "run" / "checkpoints" / "last.ckpt", root, tmp_path / "eval",
                       length=VAL_FRAMES, seed=cfg.runtime.seed, video=False)
    assert summary["frames"] == VAL_FRAMES
    assert summary["mean_psnr"] == pytest.approx(end, abs=1e-3)
