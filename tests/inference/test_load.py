"""load_model reads checkpoints written before the config groups (a train: section)."""
from __future__ import annotations

from pathlib import Path

import torch

from posecast import config as cfgmod
from posecast.inference.load import load_model
from posecast.models import PoseCVAE
from posecast.io.checkpoint import FORMAT, FORMAT_VERSION
from posecast_testing import OLD_LAYOUT


def test_a_checkpoint_with_the_older_config_layout_loads(tmp_path: Path) -> None:
    cfg = cfgmod.from_dict(OLD_LAYOUT)
    torch.manual_seed(0)
    model = PoseCVAE(cfg.model)
    path = tmp_path / "old.ckpt"
    # training/checkpoint.py's format (save_checkpoint), the config as the older versions wrote it
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "config": OLD_LAYOUT,
                "model": model.state_dict(), "epoch": 2, "step": 4, "best_psnr": 20.0}, path)
    loaded, loaded_cfg = load_model(path)
    assert loaded_cfg == cfg and loaded_cfg.optim.lr == 0.002 and loaded_cfg.inference.z_infer == "zero"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
