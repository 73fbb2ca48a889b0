"""run_state: the one resume policy of `posecast train --resume` and of studies."""
from __future__ import annotations

from pathlib import Path

import pytest

from posecast.config import ConfigError
from posecast.io.checkpoint import CheckpointError
from posecast.training.resume import run_state
from posecast_testing import copy_tree, tiny_config


def test_resume_with_the_run_s_own_config(trained_run) -> None:
    run_dir = trained_run[1]
    state = run_state(run_dir)
    assert state.status == "done" and state.config == tiny_config()  # 2 of the tiny preset's 2 epochs
    longer = run_state(run_dir, overrides={"num_epoch": 4, "lr": 0.01})  # training settings may change
    assert longer.status == "incomplete" and longer.config == tiny_config(num_epoch=4, lr=0.01)
    with pytest.raises(CheckpointError, match="model.F_dim: 8 in the checkpoint, 16 here"):
        run_state(run_dir, overrides={"F_dim": 16})  # the model may not


def test_a_study_variant_must_be_the_same_run(trained_run) -> None:
    run_dir = trained_run[1]
    assert run_state(run_dir, tiny_config(max_time=60.0)).status == "done"  # a budget is not a setting
    with pytest.raises(ConfigError, match=r"holds a run of another config \(optim.lr: 0.001 in the checkpoint"):
        run_state(run_dir, tiny_config(lr=0.01))


def test_new_runs_and_nothing_to_resume(tmp_path: Path) -> None:
    state = run_state(tmp_path, tiny_config())
    assert (state.status, state.data) == ("new", None)
    with pytest.raises(ConfigError, match="nothing to resume"):
        run_state(tmp_path)


def test_config_from_the_checkpoint_when_config_yaml_is_empty(trained_run, tmp_path: Path) -> None:
    run_dir = copy_tree(trained_run[1], tmp_path / "run")
    (run_dir / "config.yaml").write_text("")
    (run_dir / "data_path.txt").write_text("/some/data\n")
    stale = run_dir / "checkpoints" / ".last.ckpt.abc123.tmp"  # left by a save killed half-way
    stale.write_bytes(b"x")
    said: list[str] = []
    state = run_state(run_dir, overrides={"num_epoch": 3}, warn=said.append)
    assert state.config == tiny_config(num_epoch=3) and state.data == "/some/data"
    assert len(said) == 1 and "missing or unreadable" in said[0]
    assert not stale.exists()


def test_a_cosine_run_resumes_to_its_new_end_and_keeps_its_schedule(trained_run, synth_root: Path,
                                                                      tmp_path: Path) -> None:
    import torch

    from posecast.training.trainer import Trainer

    state = torch.load(trained_run[1] / "checkpoints" / "last.ckpt", weights_only=True)  # a multistep run
    cosine = Trainer(tiny_config(lr_schedule="cosine", num_epoch=4), synth_root, tmp_path / "c", progress=False)
    with pytest.raises(ConfigError, match="optim.lr_schedule: the run was trained with multistep"):
        cosine.load_state(state)
    # a cosine run after 2 of 4 epochs, resumed with num_epoch 8: the rate reaches 0 at epoch 8, not 4
    for _ in range(2):
        cosine.optimizer.step()
        cosine.scheduler.step()
    saved = {**state, "config": cosine.cfg.to_dict(), "optimizer": cosine.optimizer.state_dict(),
             "scheduler": cosine.scheduler.state_dict(), "model": cosine.model.state_dict()}
    longer = Trainer(tiny_config(lr_schedule="cosine", num_epoch=8), synth_root, tmp_path / "l", progress=False)
    longer.load_state(saved)
    rates = []
    for _ in range(6):
        rates.append(longer.optimizer.param_groups[0]["lr"])
        longer.optimizer.step()
        longer.scheduler.step()
    assert rates[0] == pytest.approx(0.5e-3)  # where the 4-epoch curve was after 2 epochs
    assert all(a > b > 0 for a, b in zip(rates, rates[1:]))  # falling, not yet 0 at epoch 4
    assert longer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # 0 at epoch 8
