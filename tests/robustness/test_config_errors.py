"""Config values that cannot work fail in `posecast train` before training starts: exit code 2,
an `error:` line naming the field, and no run folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from posecast.io.checkpoint import load_checkpoint
from robustness_support import run_cli, snapshot

BAD = [
    # negative or out-of-range ratios
    (["--tfr", "-0.5"], "schedule.tfr"),
    (["--tfr", "1.5"], "schedule.tfr"),
    (["--kl_anneal_ratio", "-1"], "schedule.kl_anneal_ratio"),
    (["--partial", "-0.2"], "data.partial"),
    (["--fast_partial", "0"], "data.fast_partial"),
    (["--tfr_d_step", "-0.1"], "schedule.tfr_d_step"),
    (["--gamma", "-0.1"], "optim.gamma"),
    (["--lr", "-0.001"], "optim.lr"),
    (["--grad_clip", "-1"], "optim.grad_clip"),
    # schedules that do not fit the run
    (["--num_epoch", "3", "--tfr_sde", "3"], "schedule.tfr_sde"),
    (["--num_epoch", "3", "--tfr_sde", "7"], "schedule.tfr_sde"),
    (["--tfr_sde", "-1"], "schedule.tfr_sde"),
    (["--num_epoch", "3", "--kl_anneal_cycle", "4"], "schedule.kl_anneal_cycle"),
    (["--kl_anneal_cycle", "0"], "schedule.kl_anneal_cycle"),
    (["--num_epoch", "0"], "optim.num_epoch"),
    # sizes
    (["--frame_H", "2"], "data.frame_H"),
    (["--frame_W", "0"], "data.frame_W"),
    (["--down", "2", "--frame_H", "30"], "data.frame_H"),  # 2 stride-2 stages need multiples of 4
    (["--down", "4"], "model.down"),
    (["--train_vi_len", "1"], "data.train_vi_len"),
    (["--batch_size", "0"], "data.batch_size"),
    (["--F_dim", "0"], "model.F_dim"),
    (["--clip_stride", "0"], "data.clip_stride"),
    (["--per_save", "0"], "runtime.per_save"),
    (["--val_every", "0"], "runtime.val_every"),
    (["--max_time", "-5"], "runtime.max_time"),
    (["--kl_anneal_type", "Linear"], "schedule.kl_anneal_type"),
]


def _fails(args: list, field: str, out: Path) -> str:
    code, _, err = run_cli(args)
    assert code == 2, err
    assert err.startswith("posecast train: error:") and field in err and "Traceback" not in err, err
    assert not out.exists(), "a run folder was made"
    return err


@pytest.mark.parametrize("flags, field", BAD, ids=[" ".join(f) for f, _ in BAD])
def test_bad_value_fails_before_training_naming_the_field(flags, field, synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _fails(["train", "--data", synth_root, "--preset", "tiny", "--out", out, "--no-progress", *flags], field, out)


@pytest.mark.parametrize("text, field", [
    ("preset: tiny\nschedule:\n  tfr_sde: 5\noptim:\n  num_epoch: 5\n", "schedule.tfr_sde"),
    ("preset: tiny\noptim:\n  lrr: 0.1\n", "lrr"),  # a misspelt field
    ("preset: tiny\ntrain:\n  lr: 0.1\n", "train: the older config layout"),  # the layout before the groups
    ("preset: tiny\nmodle:\n  F_dim: 8\n", "modle"),  # a misspelt section
    ("preset: tinyy\n", "preset"),
    ("- just\n- a list\n", "mapping"),
    ("optim: {lr: [unclosed\n", "not valid YAML"),
])
def test_bad_config_file(text: str, field: str, synth_root: Path, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(text)
    out = tmp_path / "run"
    _fails(["train", "--data", synth_root, "--config", tmp_path / "c.yaml", "--out", out], field, out)


@pytest.mark.parametrize("text, field", [("optim:\n  lr: fast\n", "optim.lr"),
                                         ("data:\n  frame_H: 32.5\n", "data.frame_H"),
                                         ("optim:\n  num_epoch: ten\n", "optim.num_epoch")])
def test_value_of_the_wrong_type_in_a_config_file(text: str, field: str, synth_root: Path, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("preset: tiny\n" + text)
    out = tmp_path / "run"
    _fails(["train", "--data", synth_root, "--config", tmp_path / "c.yaml", "--out", out], field, out)


def test_frame_too_small_for_validation_fails_before_training(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _fails(["train", "--data", synth_root, "--preset", "tiny", "--out", out, "--frame_H", "5", "--no-progress"],
           "data.frame_H", out)


def test_clip_longer_than_the_data_fails_before_training(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    err = _fails(["train", "--data", synth_root, "--preset", "tiny", "--out", out, "--train_vi_len", "100"],
                 "train_vi_len", out)
    assert "train" in err and "fewer than one training clip" in err


def test_resume_with_an_override_that_breaks_the_config(tiny_checkpoint: Path, synth_root: Path,
                                                       tmp_path: Path) -> None:
    run = Path(shutil.copytree(tiny_checkpoint.parent.parent, tmp_path / "run"))
    before = snapshot(run)
    code, _, err = run_cli(["train", "--resume", run, "--data", synth_root, "--num_epoch", "1", "--no-progress"])
    assert code == 2 and "schedule.tfr_sde" in err  # tiny's tfr_sde 1 needs 2 epochs or more
    assert snapshot(run) == before


def test_starting_over_an_existing_run_is_refused(tiny_checkpoint: Path, synth_root: Path, tmp_path: Path) -> None:
    """`train --out RUN` (without --resume) on a folder that holds a run would overwrite its log and
    checkpoints: refused, with the two ways out."""
    run = Path(shutil.copytree(tiny_checkpoint.parent.parent, tmp_path / "run"))
    before = snapshot(run)
    code, _, err = run_cli(["train", "--data", synth_root, "--preset", "tiny", "--out", run, "--no-progress"])
    assert code == 2 and "already holds a run" in err and f"--resume {run}" in err
    assert snapshot(run) == before
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 2


def test_resume_from_another_checkpoint_than_last_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`--resume RUN/checkpoints/epoch_001.ckpt` would silently continue from last.ckpt instead."""
    run = Path(shutil.copytree(tiny_checkpoint.parent.parent, tmp_path / "run"))
    code, _, err = run_cli(["train", "--resume", run / "checkpoints" / "epoch_001.ckpt", "--no-progress"])
    assert code == 2 and "resumes from its own checkpoints/last.ckpt" in err
