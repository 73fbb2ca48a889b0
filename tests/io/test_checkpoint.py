"""Checkpoints: atomic writes, weights_only loading, format versions, the lab layout, round trips."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch

from posecast import config as cfgmod
from posecast.inference.load import load_model
from posecast.rollout import predict
from posecast.models import PoseCVAE
from posecast.models.lab import posecast_key_to_lab
from posecast.io.checkpoint import (FORMAT_VERSION, CheckpointError,
                                          atomic_write_bytes, load_checkpoint, save_checkpoint)
from posecast_testing import leftover_temp_files, tiny_config


def _state(model: PoseCVAE, cfg: cfgmod.Config) -> dict:
    return {"config": cfg.to_dict(), "model": model.state_dict(), "epoch": 3, "step": 7}


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 32, 64, generator=g), torch.rand(2, 6, 3, 32, 64, generator=g)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = tiny_config()
    path = tmp_path / "ckpts" / "last.ckpt"  # parent created on demand
    save_checkpoint(path, _state(PoseCVAE(cfg.model), cfg))
    save_checkpoint(path, _state(PoseCVAE(cfg.model), cfg))  # overwrite in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    state = load_checkpoint(path)
    assert state["format"] == "posecast" and state["format_version"] == FORMAT_VERSION
    assert state["epoch"] == 3 and state["step"] == 7


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, lambda f: f.write(b"old"))

    def crash(f: io.BufferedWriter) -> None:
        f.write(b"partial new content")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of torch.save

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, crash)
    assert path.read_bytes() == b"old"
    assert leftover_temp_files(tmp_path) == []


def test_save_load_gives_identical_predictions(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = tiny_config(prior="learned", first_frame_cond=True)
    model = PoseCVAE(cfg.model).eval()
    save_checkpoint(tmp_path / "m.ckpt", _state(model, cfg))
    loaded, loaded_cfg = load_model(tmp_path / "m.ckpt")
    assert loaded_cfg == cfg and not loaded.training
    first, poses = _inputs()
    for z_mode in ("prior", "zero"):
        assert torch.equal(predict(model, first, poses, z_mode=z_mode, seed=3),
                           predict(loaded, first, poses, z_mode=z_mode, seed=3))


def test_trained_run_checkpoint_reproduces_the_trainer_model(trained_run, tiny_checkpoint: Path) -> None:
    trainer = trained_run[0]
    loaded, cfg = load_model(tiny_checkpoint)
    assert cfg == trainer.cfg
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    first, poses = _inputs(1)
    assert torch.equal(predict(trainer.model, first, poses, seed=0), predict(loaded, first, poses, seed=0))


class _Payload:
    """Pickles to a call that writes a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_crafted_pickle_is_refused_without_running_code(tmp_path: Path) -> None:
    # the payload is live: an unsafe load runs it
    live_marker = tmp_path / "live_marker"
    torch.save({"model": _Payload(live_marker)}, tmp_path / "live.ckpt")
    torch.load(tmp_path / "live.ckpt", weights_only=False)
    assert live_marker.exists()
    # ...posecast refuses it
    marker = tmp_path / "marker"
    bad = tmp_path / "evil.ckpt"
    torch.save({"format": "posecast", "format_version": FORMAT_VERSION, "model": _Payload(marker)}, bad)
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        load_checkpoint(bad)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_model(bad)
    assert not marker.exists()


def test_format_version_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "future.ckpt"
    torch.save({"format": "posecast", "format_version": FORMAT_VERSION + 98, "model": {}}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg and f"version {FORMAT_VERSION + 98}" in msg and f"version {FORMAT_VERSION}" in msg


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "garbage", "truncated", "list", "unknown"])
def test_bad_checkpoint_files(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x.ckpt"
    if kind == "folder":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(os.urandom(200))
    elif kind == "truncated":
        torch.save({"format": "posecast", "format_version": FORMAT_VERSION, "w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "unknown":
        torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    cfg = tiny_config()
    other = tiny_config(F_dim=16)
    state = _state(PoseCVAE(other.model), cfg)  # config says F_dim 8, tensors are for 16
    save_checkpoint(tmp_path / "m.ckpt", state)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "m.ckpt")


def test_lab_layout_checkpoint_is_mapped(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = tiny_config()
    model = PoseCVAE(cfg.model).eval()
    lab_sd = {posecast_key_to_lab(k): v for k, v in model.state_dict().items()}  # the lab's names
    torch.save({"state_dict": lab_sd, "optimizer": {}, "lr": 1e-3, "tfr": 0.5, "last_epoch": 12},
               tmp_path / "lab.ckpt")
    state = load_checkpoint(tmp_path / "lab.ckpt")
    assert state["format"] == "lab" and state["epoch"] == 12
    loaded, _ = load_model(tmp_path / "lab.ckpt", cfg=cfg)
    first, poses = _inputs()
    assert torch.equal(predict(model, first, poses, seed=0), predict(loaded, first, poses, seed=0))


def test_a_lab_checkpoint_does_not_fit_a_unet_config(tmp_path: Path) -> None:
    """The lab's modules have no counterpart for the U-Net's layers: a clear CheckpointError."""
    torch.manual_seed(0)
    model = PoseCVAE(tiny_config().model)
    lab_sd = {posecast_key_to_lab(k): v for k, v in model.state_dict().items()}
    torch.save({"state_dict": lab_sd, "optimizer": {}, "lr": 1e-3, "tfr": 0.5, "last_epoch": 12}, tmp_path / "lab.ckpt")
    unet = tiny_config(arch="unet", levels=2)
    with pytest.raises(CheckpointError, match="frame_transformation"):
        load_model(tmp_path / "lab.ckpt", cfg=unet)


def test_load_model_puts_the_model_in_its_configs_layout(tmp_path: Path) -> None:
    """A config trained channels_last rolls out channels_last after loading (the fast layout),
    with the same predictions as the NCHW model in fp32; layout=False keeps NCHW."""
    torch.manual_seed(0)
    cfg = tiny_config(channels_last=True)
    model = PoseCVAE(cfg.model).eval()
    save_checkpoint(tmp_path / "m.ckpt", _state(model, cfg))
    fast, _ = load_model(tmp_path / "m.ckpt")
    plain, _ = load_model(tmp_path / "m.ckpt", layout=False)
    assert fast.channels_last and not plain.channels_last
    first, poses = _inputs(2)
    torch.testing.assert_close(predict(fast, first, poses, seed=1), predict(plain, first, poses, seed=1),
                               atol=1e-5, rtol=0)
    save_checkpoint(tmp_path / "n.ckpt", _state(model, tiny_config(channels_last=False)))
    assert not load_model(tmp_path / "n.ckpt")[0].channels_last


def test_the_lab_layout_names_are_the_model_s_lab_modules() -> None:
    # io recognises a lab checkpoint by the module names the model's key mapping renames
    from posecast.io.checkpoint import LAB_MODULE_NAMES
    from posecast.models.lab import LAB_MODULES

    assert LAB_MODULE_NAMES == tuple(LAB_MODULES)
