"""A training run killed with SIGKILL at any moment resumes with `posecast train --resume RUN`
to the same final weights and the same metrics.csv as a run that was never interrupted.

The runs that get killed are real `python -m posecast.cli train` child processes on one CPU
thread, like this test process; the kill is a real SIGKILL (from this test, or from the child
itself at a chosen point through the hooks in robustness_support.CHILD), so no handler, finally
block or atexit runs. The uninterrupted reference run and the final resumes run in this process
(`posecast.cli.main`), which saves the start-up of a child each; the same thread count keeps
float reductions in the same order, so the comparisons are bitwise.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from posecast.data.synth import write_synthetic_dataset
from posecast.io.checkpoint import load_checkpoint
from posecast_testing import tensorboard_scalars
from robustness_support import (TIMING, assert_log_matches_checkpoint, metrics_rows, run_child, run_cli,
                                start_child, without_timing)

EPOCHS = 3


def _train_args(data: Path, run: Path) -> list:
    # tiny preset: per_save 1, so every epoch writes epoch_NNN.ckpt and last.ckpt; validation
    # (and best.ckpt) in the last epoch only, which keeps the killed children quick
    return ["train", "--data", data, "--preset", "tiny", "--out", run, "--num_epoch", EPOCHS,
            "--val_every", EPOCHS, "--no-progress"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 24 frames: 6 clips of 4, 3 optimiser steps an epoch
    return write_synthetic_dataset(tmp_path_factory.mktemp("kill") / "data", train_sequences=1,
                                   train_len=24, val_len=8, test_len=8)


@pytest.fixture(scope="module")
def reference(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run."""
    run = tmp_path_factory.mktemp("reference") / "run"
    code, _, err = run_cli(_train_args(dataset, run))
    assert code == 0, err
    return run


def _resume(run: Path) -> None:
    code, out, err = run_cli(["train", "--resume", run, "--no-progress"])
    assert code == 0, err
    assert "resumed from" in out


def _assert_same_as_reference(run: Path, reference: Path) -> None:
    ref = load_checkpoint(reference / "checkpoints" / "last.ckpt")
    got = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert got["epoch"] == ref["epoch"] == EPOCHS
    assert ref["model"].keys() == got["model"].keys()
    for k, v in ref["model"].items():
        assert torch.equal(v, got["model"][k]), f"{k} differs from the uninterrupted run"
    for i, state in ref["optimizer"]["state"].items():  # Adam moments too
        for k, v in state.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(got["optimizer"]["state"][i][k])), (i, k)
    rows = metrics_rows(run)
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS)), "an epoch row is duplicated or lost"
    assert without_timing(rows) == without_timing(metrics_rows(reference))
    tb, ref_tb = tensorboard_scalars(run), tensorboard_scalars(reference)
    assert tb.keys() == ref_tb.keys() and "train_loss" in tb
    for tag, points in tb.items():  # each epoch once, as TensorBoard shows it after the resume
        if tag in TIMING:
            assert [s for s, _ in points] == [s for s, _ in ref_tb[tag]], tag
        else:
            assert points == ref_tb[tag], tag
    assert [s for s, _ in tb["train_loss"]] == list(range(EPOCHS))  # in order: the resume's file is read last
    for name in sorted(p.name for p in (reference / "val").iterdir()):
        assert (run / "val" / name).read_bytes() == (reference / "val" / name).read_bytes(), name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        sorted(p.name for p in (reference / "checkpoints").iterdir())  # no temporary files left


def _wait_for_rows(proc, run: Path, rows: int, timeout: float = 120) -> None:
    """Poll until metrics.csv holds `rows` epochs and last.ckpt exists (the run still going)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read()}")
        try:
            n = len(metrics_rows(run))
        except (FileNotFoundError, ValueError):
            n = 0
        if n >= rows and (run / "checkpoints" / "last.ckpt").exists():
            return
        time.sleep(0.01)
    proc.kill()
    pytest.fail("timed out waiting for the run")


def _sigkill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(dataset, reference, tmp_path) -> None:
    run = tmp_path / "run"
    proc = start_child(_train_args(dataset, run))
    _wait_for_rows(proc, run, 1)
    _sigkill(proc)  # in the second epoch
    assert assert_log_matches_checkpoint(run) >= 1  # last.ckpt complete and loadable
    _resume(run)
    _assert_same_as_reference(run, reference)


@pytest.mark.slow
def test_sigkill_while_writing_last_ckpt_and_after_a_metrics_row(dataset, reference, tmp_path) -> None:
    run = tmp_path / "run"
    # killed half-way through writing last.ckpt of epoch 2
    proc = run_child(_train_args(dataset, run), RB_HOOK="mid_checkpoint_write", RB_AT="2")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpts = run / "checkpoints"
    leftovers = [p for p in ckpts.iterdir() if p.name.startswith(".last.ckpt.")]
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # half a checkpoint in its temporary file...
    assert load_checkpoint(ckpts / "last.ckpt")["epoch"] == 1  # ...while last.ckpt is epoch 1, whole
    assert_log_matches_checkpoint(run)
    # resumed (which removes the temporary file), then killed right after epoch 2's metrics row
    proc = run_child(["train", "--resume", run, "--no-progress"], RB_HOOK="after_metrics_row", RB_AT="1")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not [p for p in ckpts.iterdir() if p.name.startswith(".")]
    assert_log_matches_checkpoint(run)
    assert len(metrics_rows(run)) == 2
    _resume(run)
    _assert_same_as_reference(run, reference)


@pytest.mark.slow
def test_sigkill_after_last_ckpt_before_its_metrics_row(dataset, reference, tmp_path) -> None:
    run = tmp_path / "run"
    proc = run_child(_train_args(dataset, run), RB_HOOK="after_checkpoint", RB_AT="2")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 2
    _resume(run)
    _assert_same_as_reference(run, reference)


def test_resuming_a_finished_run_changes_nothing(reference, tmp_path) -> None:
    import shutil

    run = Path(shutil.copytree(reference, tmp_path / "run"))
    before = metrics_rows(run)
    code, out, err = run_cli(["train", "--resume", run, "--no-progress"])
    assert code == 0, err
    assert metrics_rows(run) == before


def test_resume_when_config_yaml_was_left_empty(reference, tmp_path) -> None:
    """config.yaml is rewritten at every start (open with O_TRUNC, then write): a kill between the
    two leaves it empty. The resume then takes the config saved in last.ckpt."""
    import shutil

    run = Path(shutil.copytree(reference, tmp_path / "run"))
    (run / "config.yaml").write_bytes(b"")
    code, out, err = run_cli(["train", "--resume", run, "--no-progress"])
    assert code == 0, err
    assert "using the config saved in" in err
    assert "preset: tiny" in (run / "config.yaml").read_text()
    (run / "config.yaml").write_bytes(b"")
    shutil.rmtree(run / "checkpoints")  # and with no checkpoint either: nothing to resume, said so
    code, out, err = run_cli(["train", "--resume", run, "--no-progress"])
    assert code == 2 and "nothing to resume" in err
