"""optim.ema_decay: the moving average of the weights (posecast.training.ema), kept beside training
without changing it, saved, resumed and rolled out with (inference.use_ema)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from posecast import cli
from posecast import config as cfgmod
from posecast.inference.load import load_model
from posecast.io.checkpoint import load_checkpoint
from posecast.training.ema import decay_at, make_ema
from posecast.training.trainer import Trainer
from posecast_testing import tiny_config, train_until_interrupted

QUIET = dict(progress=False, log=lambda _: None)


def test_decay_warms_up_then_holds() -> None:
    assert [decay_at(0.999, n) for n in (0, 1, 8)] == [0.1, 2 / 11, 9 / 18]
    assert decay_at(0.999, 10**6) == 0.999
    assert decay_at(0.5, 100) == 0.5


def test_average_follows_the_formula() -> None:
    net = nn.Linear(2, 1, bias=False)
    ema = make_ema(net, 0.9)
    seen = []
    for n in range(4):  # the weight after each of 4 optimiser steps
        with torch.no_grad():
            net.weight.fill_(float(n + 1))
        seen.append(float(n + 1))
        ema.update_parameters(net)
    expect = seen[0]  # the first update copies the weights
    for n, w in enumerate(seen[1:], start=1):
        d = decay_at(0.9, n)
        expect = d * expect + (1 - d) * w
    assert torch.allclose(ema.module.weight, torch.full((1, 2), expect))
    assert make_ema(net, 0.0) is None


def test_integer_buffers_are_copied_not_averaged() -> None:
    """BatchNorm (model.arch lab) has an integer count beside its float statistics."""
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    ema = make_ema(net, 0.9)
    for _ in range(3):
        net(torch.randn(2, 1, 3, 3))  # training mode: running stats and the count move
        ema.update_parameters(net)
    avg = ema.module[1]
    assert int(avg.num_batches_tracked) == int(net[1].num_batches_tracked) == 3
    assert not torch.equal(avg.running_mean, net[1].running_mean)  # the float statistics are averaged


def test_bad_decay_is_a_config_error() -> None:
    for bad in (1.0, -0.1):
        with pytest.raises(cfgmod.ConfigError, match="optim.ema_decay"):
            tiny_config(ema_decay=bad).validate()


def test_training_is_the_same_with_the_average(synth_root: Path, tmp_path: Path) -> None:
    """The average never feeds back: the trained weights are bit for bit those of a run without it,
    and the checkpoint's average is the trainer's."""
    plain = Trainer(tiny_config(num_epoch=2, seed=3), synth_root, tmp_path / "plain", **QUIET)
    plain.fit()
    avg = Trainer(tiny_config(num_epoch=2, seed=3, ema_decay=0.9), synth_root, tmp_path / "ema", **QUIET)
    avg.fit()
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, avg.model.state_dict()[k]), k
    state = load_checkpoint(tmp_path / "ema" / "checkpoints" / "last.ckpt")
    assert state["ema_updates"] == avg.step > 1
    assert "ema" not in load_checkpoint(tmp_path / "plain" / "checkpoints" / "last.ckpt")
    ema_sd = avg.ema.module.state_dict()
    assert any(not torch.equal(ema_sd[k], v) for k, v in avg.model.state_dict().items())  # it averages
    for k, v in ema_sd.items():
        assert torch.equal(state["ema"][k], v), k


def test_inference_loads_the_average_unless_told_not(synth_root: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(num_epoch=2, ema_decay=0.9), synth_root, tmp_path / "run", **QUIET)
    trainer.fit()
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    by_default, _ = load_model(ckpt)
    trained, _ = load_model(ckpt, use_ema=False)
    for k, v in trainer.ema.module.state_dict().items():
        assert torch.equal(by_default.state_dict()[k], v), k
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(trained.state_dict()[k], v), k
    assert trainer.inference_model() is trainer.ema.module
    off = Trainer(tiny_config(num_epoch=2, ema_decay=0.9, use_ema=False), synth_root, tmp_path / "off", **QUIET)
    assert off.inference_model() is off.model
    scores = {}  # posecast evaluate --ema on|off: the same z (its mean), only the weights differ
    for ema in ("on", "off"):
        assert cli.main(["evaluate", "--checkpoint", str(ckpt), "--data", str(synth_root), "--out",
                         str(tmp_path / ema), "--z", "zero", "--ema", ema, "--no-video"]) == 0
        scores[ema] = json.loads((tmp_path / ema / "summary.json").read_text())
    assert scores["on"]["weights"] == "moving average" and scores["off"]["weights"] == "trained"
    assert scores["on"]["mean_psnr"] != scores["off"]["mean_psnr"]


def test_resume_continues_the_average_bitwise(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    cfg = tiny_config(num_epoch=3, seed=4, ema_decay=0.8)
    whole = Trainer(cfg, synth_root, tmp_path / "whole", **QUIET)
    whole.fit()
    train_until_interrupted(cfg, synth_root, tmp_path / "split", monkeypatch)  # stopped after epoch 1's checkpoint
    resumed = Trainer(cfg, synth_root, tmp_path / "split", **QUIET)
    resumed.fit(resume=True)
    assert int(resumed.ema.n_averaged) == whole.step
    for k, v in whole.ema.module.state_dict().items():
        assert torch.equal(resumed.ema.module.state_dict()[k], v), k
