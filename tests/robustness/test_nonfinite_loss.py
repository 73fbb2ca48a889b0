"""A non-finite loss, through `posecast train`: a clear message naming the epoch and step, the last
good checkpoint kept, the remedies offered; `--skip_nonfinite` skips the bad batch instead."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import posecast.training.step as step_mod
from posecast.io.checkpoint import load_checkpoint
from robustness_support import metrics_rows, run_cli

STEPS = 3  # the shared synthetic dataset: 24 frames, clips of 4, batches of 2


def _poison(monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    """The loss of the at-th training step becomes NaN (as after an exploding update)."""
    orig, seen = step_mod.loss_step, {"n": 0}

    def loss_step(model, batch, tf_mask, beta, **options):
        out = orig(model, batch, tf_mask, beta, **options)
        if torch.is_grad_enabled():  # training, not validation
            seen["n"] += 1
            if seen["n"] == at:
                out = dataclasses.replace(out, loss=out.loss * float("nan"))
        return out

    monkeypatch.setattr(step_mod, "loss_step", loss_step)


def _args(data: Path, run: Path, *more) -> list:
    return ["train", "--data", data, "--out", run, "--preset", "tiny", "--num_epoch", 3, "--val_every", 3,
            "--no-progress", *more]


@pytest.mark.slow
def test_nan_loss_stops_with_the_epoch_step_and_remedies(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    _poison(monkeypatch, STEPS + 2)  # epoch 2, batch 2
    code, out, err = run_cli(_args(synth_root, run))
    assert code == 2 and "Traceback" not in err
    assert "non-finite loss (nan) at epoch 2, batch 2 (step 5)" in err
    for remedy in ("optim.lr", "optim.grad_clip", "runtime.skip_nonfinite"):
        assert remedy in err
    assert str(run / "checkpoints") in err
    last = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 1 and all(torch.isfinite(v).all() for v in last["model"].values())
    assert [r["epoch"] for r in metrics_rows(run)] == ["0"]
    monkeypatch.undo()
    code, out, err = run_cli(["train", "--resume", run, "--grad_clip", "0.5", "--no-progress"])  # a remedy
    assert code == 0, err
    assert [r["epoch"] for r in metrics_rows(run)] == ["0", "1", "2"]


@pytest.mark.slow
def test_skip_nonfinite_skips_the_batch_and_finishes(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    _poison(monkeypatch, STEPS + 2)
    code, out, err = run_cli(_args(synth_root, run, "--skip_nonfinite"))
    assert code == 0, err
    assert "non-finite loss (nan) at epoch 2, batch 2 (step 5): batch skipped" in out
    rows = metrics_rows(run)
    assert [int(r["step"]) for r in rows] == [3, 5, 8]  # one optimiser step fewer in epoch 2
    assert all(float(r["train_loss"]) == float(r["train_loss"]) for r in rows)


@pytest.mark.slow
def test_resume_with_a_lower_learning_rate_uses_it(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    _poison(monkeypatch, STEPS + 1)
    assert run_cli(_args(synth_root, run))[0] == 2
    monkeypatch.undo()
    code, _, err = run_cli(["train", "--resume", run, "--lr", "0.0001", "--no-progress"])
    assert code == 0, err
    assert [float(r["lr"]) for r in metrics_rows(run)] == [0.001, 0.0001, 0.0001]
