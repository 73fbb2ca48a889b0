"""`posecast train`: the recipe named in its first line, the frame size of a prepared dataset, and
the validation rollout beside copying frame 0 at the end."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from posecast import cli
from posecast.analysis.baselines import copy_first
from posecast import config as cfgmod
from posecast.cli import common
from posecast.cli.train import _versus_copying
from posecast.data.lab import VideoSequence
from posecast.perf import to_float
from posecast_testing import copy_tree

QUICK = ["--num_epoch", "1", "--tfr_sde", "0", "--kl_anneal_cycle", "1", "--no-progress"]


def run(argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_preset_best_from_any_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["train", "--data", "x", "--preset", "best"])
    assert common.config_from(args) == cfgmod.preset("best")


def test_config_and_preset_together_are_refused(synth_root: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "c.yaml").write_text("preset: tiny\n")
    rc, _, err = run(["train", "--data", synth_root, "--config", tmp_path / "c.yaml", "--preset", "small",
                      "--out", tmp_path / "run"], capsys)
    assert rc == 2 and "give one" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_first_line_names_the_recipe_and_the_end_compares_with_copying(synth_root: Path, tmp_path: Path,
                                                                        capsys) -> None:
    rc, out, err = run(["train", "--data", synth_root, "--preset", "tiny", "--out", tmp_path / "a", *QUICK], capsys)
    assert rc == 0, err
    assert out.splitlines()[0].startswith(f"training recipe tiny on {synth_root} into {tmp_path / 'a'}: ")
    line = next(ln for ln in out.splitlines() if "copying frame 0 forward" in ln)
    model, copy = map(float, re.search(r"rollout: ([\d.]+) dB PSNR; copying frame 0 forward: ([\d.]+) dB", line).groups())
    assert ("does not beat copying frame 0" in err) == (model <= copy)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"preset": "tiny", "optim": {"lr": 0.002}}))
    rc, out, err = run(["train", "--data", synth_root, "--config", tmp_path / "c.yaml", "--out", tmp_path / "b",
                        *QUICK], capsys)
    assert rc == 0, err
    assert out.splitlines()[0].startswith(f"training {tmp_path / 'c.yaml'} (over recipe tiny) on {synth_root}")


def _val(frames: torch.Tensor) -> VideoSequence:
    return VideoSequence("val", frames, torch.zeros_like(frames))


@pytest.mark.parametrize("ahead, warned", [(-1.0, True), (0.0, True), (5.0, False)])
def test_a_model_that_does_not_beat_copying_is_warned_about(ahead: float, warned: bool, capsys) -> None:
    frames = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    frames[1:, :, :4] = 255  # frames 1..3 differ from frame 0 in half the pixels: PSNR 10 log10(2)
    copy = float(copy_first(to_float(frames)).mean())  # the very number train computes
    assert copy == pytest.approx(10 * math.log10(2), abs=1e-5)
    lines: list[str] = []
    trainer = SimpleNamespace(val_seqs=[_val(frames)], val_len=4, best_psnr=float("-inf"), log=lines.append,
                              dist=SimpleNamespace(main=True), cfg=SimpleNamespace(preset="small"))
    _versus_copying(trainer, {"val_psnr": copy + ahead})
    assert lines == [f"the last epoch's validation rollout: {copy + ahead:.2f} dB PSNR; copying frame 0 forward: "
                     f"{copy:.2f} dB ({ahead:+.2f} dB)"]
    err = capsys.readouterr().err
    assert ("warning: the model does not beat copying frame 0" in err) == warned
    assert ("train longer, or with the quality recipe (--preset best)" in err) == warned
    trainer.cfg.preset = "best"  # already the quality recipe: only "train longer"
    _versus_copying(trainer, {"val_psnr": copy + ahead})
    err = capsys.readouterr().err
    assert ("the poses; train longer\n" in err) == warned and "--preset best" not in err
    lines.clear()  # no validation in the last epoch: the best one is compared
    _versus_copying(SimpleNamespace(**{**vars(trainer), "best_psnr": copy + 2}), {})
    assert lines[0].startswith(f"the best validation rollout: {copy + 2:.2f} dB PSNR")


def _prepared(synth_root: Path, tmp_path: Path, report: object) -> Path:
    data = copy_tree(synth_root, tmp_path / "ds")
    text = report if isinstance(report, str) else json.dumps(report)
    (data / "prepare_report.json").write_text(text)
    return data


def test_a_prepared_dataset_trains_at_the_size_it_was_prepared_at(synth_root: Path, tmp_path: Path,
                                                                    capsys) -> None:
    data = _prepared(synth_root, tmp_path, {"input": "me.mp4", "frame_size": [32, 16]})
    rc, out, err = run(["train", "--data", data, "--preset", "tiny", "--out", tmp_path / "run", *QUICK], capsys)
    assert rc == 0, err
    assert f"on {data} (prepared from me.mp4 at 32x16) into" in out.splitlines()[0]
    saved = cfgmod.load(tmp_path / "run" / "config.yaml")
    assert (saved.data.frame_W, saved.data.frame_H) == (32, 16)
    # resuming keeps it; a dataset prepared at another size than the run is refused
    (data / "prepare_report.json").write_text(json.dumps({"input": "me.mp4", "frame_size": [64, 32]}))
    rc, _, err = run(["train", "--resume", tmp_path / "run", "--num_epoch", "2", "--no-progress"], capsys)
    assert rc == 2 and "32x16 here, but" in err and "prepared at 64x32" in err


@pytest.mark.parametrize("how", ["flags", "file"])
def test_a_size_chosen_against_the_prepared_one_is_refused(how: str, synth_root: Path, tmp_path: Path,
                                                           capsys) -> None:
    data = _prepared(synth_root, tmp_path, {"input": "me.mp4", "frame_size": [128, 64]})
    (tmp_path / "c.yaml").write_text("preset: tiny\ndata: {frame_W: 64, frame_H: 32}\n")
    chosen = ["--preset", "tiny", "--frame_W", "64", "--frame_H", "32"] if how == "flags" else \
        ["--config", tmp_path / "c.yaml"]
    rc, _, err = run(["train", "--data", data, *chosen, "--out", tmp_path / "run", *QUICK], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("posecast train: error: data.frame_W x data.frame_H: 64x32 here, but")
    assert f"prepared at 128x64 ({data / 'prepare_report.json'})" in err and "--size 64x32" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("report, words", [("{not json", "not a readable prepare report"),
                                           ({"frame_size": [64]}, "frame_size must be [width, height]"),
                                           ({"frame_size": [0, 32]}, "frame_size must be [width, height]")])
def test_a_broken_prepare_report_is_one_line(report: object, words: str, synth_root: Path, tmp_path: Path,
                                             capsys) -> None:
    data = _prepared(synth_root, tmp_path, report)
    rc, _, err = run(["train", "--data", data, "--preset", "tiny", "--out", tmp_path / "run", *QUICK], capsys)
    assert rc == 2 and words in err and str(data / "prepare_report.json") in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
