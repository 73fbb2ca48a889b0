"""load_model refuses checkpoints written before the recipes (format 1, a train: section) in one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posecast import cli
from posecast import config as cfgmod
from posecast.inference.load import load_model
from posecast.models import PoseCVAE
from posecast.io.checkpoint import FORMAT, FORMAT_VERSION, CheckpointError
from posecast_testing import OLD_LAYOUT


def _old_checkpoint(path: Path, version: int) -> Path:
    torch.manual_seed(0)
    model = PoseCVAE(cfgmod.preset("tiny").model)
    # training/checkpoint.py's format (save_checkpoint), the config as the older versions wrote it
    torch.save({"format": FORMAT, "format_version": version, "config": OLD_LAYOUT,
                "model": model.state_dict(), "epoch": 2, "step": 4, "best_psnr": 20.0}, path)
    return path


def test_a_checkpoint_of_format_1_is_refused(tmp_path: Path) -> None:
    assert FORMAT_VERSION == 2
    with pytest.raises(CheckpointError, match=r"older posecast checkpoint format \(version 1\); this posecast "
                                              r"reads version 2"):
        load_model(_old_checkpoint(tmp_path / "old.ckpt", 1))


def test_a_train_section_in_a_checkpoint_is_one_line_and_exit_2(tmp_path: Path, synth_root: Path, capsys) -> None:
    path = _old_checkpoint(tmp_path / "odd.ckpt", FORMAT_VERSION)  # the current tag over the old layout
    with pytest.raises(cfgmod.ConfigError, match="^train: the older config layout"):
        load_model(path)
    rc = cli.main(["evaluate", "--checkpoint", str(path), "--data", str(synth_root), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 2 and "train: the older config layout" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "e").exists()
