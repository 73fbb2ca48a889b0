"""`posecast` commands called in-process through posecast.cli.main (plus one real subprocess)."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import posecast.demo as demo_mod
from posecast import cli, perf
from posecast import config as cfgmod
from posecast.cli import common
from posecast_testing import SYNTH, write_split

SMALL = ["--frame_H", "8", "--frame_W", "12"]


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `posecast ARGV`; an uncaught exception fails the test."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def _parse_train(argv: list[str]) -> cfgmod.Config:
    argv = [common.LAB_ALIASES.get(str(a), str(a)) for a in argv]
    args = cli.build_parser().parse_args(["train", "--data", "x"] + argv)
    return common.config_from(args)


# -- synth / train ----------------------------------------------------------------------------------
def test_synth(tmp_path: Path, capsys) -> None:
    rc, out, _ = run(["synth", tmp_path / "ds", "--train-sequences", "1", "--train-len", "6", "--val-len", "4",
                      "--test-len", "3", "--height", "16", "--width", "24"], capsys)
    assert rc == 0 and str(tmp_path / "ds") in out
    assert len(list((tmp_path / "ds" / "train" / "train_img").iterdir())) == 6
    assert len(list((tmp_path / "ds" / "test" / "test_label" / "0").iterdir())) == 3
    assert Image.open(tmp_path / "ds" / "val" / "val_img" / "frame0.png").size == (24, 16)


@pytest.mark.slow
def test_train_with_the_lab_s_flag_names_then_resume(synth_root: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    rc, out, err = run(["train", "--DR", synth_root, "--save_root", run_dir, "--preset", "tiny", "--num_epoch", "1",
                        "--tfr_sde", "0", "--kl_anneal_cycle", "1", "--tfr_d_step", "0.25", "--no-progress"], capsys)
    assert rc == 0, err
    assert f"into {run_dir}: fp32, NCHW, " in out  # the tiny preset's precision and layout, said at the start
    saved = cfgmod.load(run_dir / "config.yaml")
    assert saved.preset == "tiny" and saved.optim.num_epoch == 1 and saved.schedule.tfr_sde == 0
    assert saved.schedule.tfr_d_step == 0.25
    assert Path((run_dir / "data_path.txt").read_text()) == synth_root.resolve()
    with (run_dir / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0"]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    # resume the lab way (--ckpt_path, a checkpoint file) with one more epoch; data from data_path.txt
    rc, out, err = run(["train", "--ckpt_path", run_dir / "checkpoints" / "last.ckpt", "--num_epoch", "2",
                        "--no-progress"], capsys)
    assert rc == 0, err
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert float(rows[1]["tfr"]) == 0.5  # 1 - 0.25 * 2: the resumed schedule
    assert cfgmod.load(run_dir / "config.yaml").optim.num_epoch == 2


def test_train_flag_types() -> None:
    cfg = _parse_train(["--preset", "tiny", "--fast_train", "--milestones", "3", "5", "--clip_stride", "2",
                        "--grad_clip", "none", "--lr", "0.01", "--kl_anneal_type", "Monotonic"])
    assert cfg.data.fast_train is True and cfg.optim.milestones == [3, 5] and cfg.data.clip_stride == 2
    assert cfg.optim.grad_clip is None and cfg.optim.lr == 0.01 and cfg.schedule.kl_anneal_type == "Monotonic"
    assert _parse_train(["--preset", "tiny", "--fast_train", "false"]).data.fast_train is False
    assert _parse_train([]) == cfgmod.preset("lab")


def test_train_config_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"preset": "tiny", "optim": {"num_epoch": 4, "lr": 0.002}}))
    cfg = _parse_train(["--config", tmp_path / "c.yaml", "--tfr_sde", "2"])
    assert cfg.preset == "tiny" and cfg.optim.num_epoch == 4 and cfg.optim.lr == 0.002
    assert cfg.schedule.tfr_sde == 2 and cfg.model == cfgmod.preset("tiny").model


@pytest.mark.parametrize("flags,field", [(["--lr", "-1"], "optim.lr"), (["--num_epoch", "3", "--tfr_sde", "5"],
                                                                          "schedule.tfr_sde"),
                                         (["--partial", "0"], "data.partial")])
def test_train_bad_config_value(flags, field, synth_root: Path, tmp_path: Path, capsys) -> None:
    rc, _, err = run(["train", "--data", synth_root, "--out", tmp_path / "r", "--preset", "tiny"] + flags, capsys)
    assert rc == 2 and "error:" in err and field in err
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_train_missing_config_file(tmp_path: Path, capsys) -> None:
    rc, _, err = run(["train", "--data", tmp_path, "--config", tmp_path / "nope.yaml"], capsys)
    assert rc == 2 and str(tmp_path / "nope.yaml") in err


def test_unknown_flag_is_a_usage_error(capsys) -> None:
    rc, _, err = run(["train", "--no_such_flag", "1"], capsys)
    assert rc == 2 and "error:" in err


# -- bad inputs: exit code 2, `error:` and the path on stderr, no traceback --------------------------
def _break(root: Path, kind: str) -> Path:
    """Damage a copy of a small dataset; returns the path the message must name."""
    img, lab = root / "train" / "train_img", root / "train" / "train_label"
    if kind == "missing split folder":
        shutil.rmtree(root / "val")
        return root / "val"
    if kind == "frame without label":
        (lab / "frame5.png").unlink()
        return img / "frame5.png"
    if kind == "label without frame":
        (img / "frame2.png").unlink()
        return lab / "frame2.png"
    if kind == "non-image file":
        (img / "frame3.png").write_text("this is not a PNG")
        return img / "frame3.png"
    if kind == "truncated image":
        (lab / "frame1.png").write_bytes((lab / "frame1.png").read_bytes()[:30])
        return lab / "frame1.png"
    if kind == "empty folder":
        for p in img.iterdir():
            p.unlink()
        return img
    if kind == "empty dataset folder":
        shutil.rmtree(root)
        root.mkdir()
        return root / "train"
    raise AssertionError(kind)


KINDS = ["missing split folder", "frame without label", "label without frame", "non-image file",
         "truncated image", "empty folder", "empty dataset folder"]


@pytest.mark.parametrize("kind", KINDS)
def test_train_bad_inputs(kind: str, tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    write_split(root, "train", 8)
    write_split(root, "val", 5)
    named = _break(root, kind)
    rc, _, err = run(["train", "--data", root, "--out", tmp_path / "run", "--preset", "tiny"] + SMALL, capsys)
    assert rc == 2
    assert err.startswith("posecast train: error:") and str(named) in err, err
    assert "Traceback" not in err


def test_train_fewer_frames_than_one_clip(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    write_split(root, "train", 3)
    write_split(root, "val", 5)
    rc, _, err = run(["train", "--data", root, "--out", tmp_path / "run", "--preset", "tiny"] + SMALL, capsys)
    assert rc == 2 and "error:" in err and "fewer than one training clip" in err
    # that the message should also name train/ is an xfail in tests/training/test_trainer.py


@pytest.mark.parametrize("kind", ["missing split folder", "non-image file", "empty dataset folder"])
def test_evaluate_bad_inputs(kind: str, tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    write_split(root, "train", 8)
    write_split(root, "val", 5)
    if kind == "non-image file":
        (root / "val" / "val_img" / "frame1.png").write_bytes(b"\x89PNG nope")
        named = root / "val" / "val_img" / "frame1.png"
    else:
        _break(root, kind)
        named = root / "val"  # evaluate reads the val split
    rc, _, err = run(["evaluate", "--checkpoint", tiny_checkpoint, "--data", root, "--out", tmp_path / "ev"], capsys)
    assert rc == 2 and err.startswith("posecast evaluate: error:") and str(named) in err, err


def test_evaluate_and_predict_bad_checkpoint_or_poses(tiny_checkpoint: Path, synth_root: Path, tmp_path: Path,
                                                     capsys) -> None:
    rc, _, err = run(["evaluate", "--checkpoint", tmp_path / "none.ckpt", "--data", synth_root], capsys)
    assert rc == 2 and str(tmp_path / "none.ckpt") in err
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    rc, _, err = run(["predict", "--checkpoint", tmp_path / "junk.ckpt", "--out", tmp_path / "p",
                      "--test-data", synth_root], capsys)
    assert rc == 2 and str(tmp_path / "junk.ckpt") in err
    first = synth_root / "test" / "test_img" / "0" / "frame0.png"
    rc, _, err = run(["predict", "--checkpoint", tiny_checkpoint, "--out", tmp_path / "p", "--first-frame", first,
                      "--poses", tmp_path / "no_poses"], capsys)
    assert rc == 2 and str(tmp_path / "no_poses") in err
    rc, _, err = run(["predict", "--checkpoint", tiny_checkpoint, "--out", tmp_path / "p", "--first-frame",
                      tmp_path / "no.png", "--poses", synth_root / "test" / "test_label" / "0"], capsys)
    assert rc == 2 and str(tmp_path / "no.png") in err
    rc, _, err = run(["predict", "--checkpoint", tiny_checkpoint, "--out", tmp_path / "p"], capsys)
    assert rc == 2 and "error:" in err and "--test-data" in err
    rc, _, err = run(["evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_root, "--samples", "0"], capsys)
    assert rc == 2 and "error:" in err


@pytest.mark.slow
def test_console_script_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "posecast.cli", "train", "--data", str(tmp_path / "missing"),
                           "--out", str(tmp_path / "run"), "--preset", "tiny"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and str(tmp_path / "missing") in proc.stderr
    assert "Traceback" not in proc.stderr


# -- evaluate / predict ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_evaluate_command(tiny_checkpoint: Path, synth_root: Path, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "ev"
    rc, out, err = run(["evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_root, "--out", out_dir,
                        "--samples", "2"], capsys)
    assert rc == 0, err
    for name in ("psnr_per_frame.csv", "psnr_per_frame.png", "val.gif", "val.mp4", "summary.json",
                 "weakest_frames.png"):
        assert (out_dir / name).stat().st_size > 0, name
    s = json.loads((out_dir / "summary.json").read_text())
    w = s["weakest_frames"][0]
    assert f"weakest: val frame {w['frame']} ({w['psnr']:.2f} dB)" in out
    assert s["samples"] == 2 and s["frames"] == SYNTH["val_len"] and s["sequences"] == ["val"]
    assert s["best_of_n_psnr"] >= s["mean_psnr"]
    assert "best of 2" in out and f"{s['mean_psnr']:.2f}" in out
    with (out_dir / "psnr_per_frame.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(1, SYNTH["val_len"]))
    with Image.open(out_dir / "val.gif") as im:
        assert im.n_frames == SYNTH["val_len"]
    assert s["mirror_average"] is False  # the tiny preset's inference.mirror_average
    scores = {}
    for mirror in ("off", "on"):  # the same z (its mean): only the mirror averaging differs
        rc, _, err = run(["evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_root, "--out",
                          tmp_path / mirror, "--z", "zero", "--mirror", mirror, "--no-video"], capsys)
        assert rc == 0, err
        scores[mirror] = json.loads((tmp_path / mirror / "summary.json").read_text())
        assert scores[mirror]["mirror_average"] is (mirror == "on")
    assert scores["on"]["mean_psnr"] != scores["off"]["mean_psnr"]


@pytest.mark.slow
def test_evaluate_and_predict_precision_override(tiny_checkpoint: Path, synth_root: Path, tmp_path: Path,
                                                 capsys) -> None:
    """--precision picks the rollout's precision (default: the config's runtime.precision, fp32 for
    tiny); summary.json says which ran. bf16 frames stay close to fp32's (the model is tiny)."""
    runs = {}
    for prec in (None, "fp32", "bf16"):
        out_dir = tmp_path / f"ev_{prec}"
        extra = [] if prec is None else ["--precision", prec]
        rc, _, err = run(["evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_root, "--out", out_dir,
                          "--no-video"] + extra, capsys)
        assert rc == 0, err
        runs[prec] = json.loads((out_dir / "summary.json").read_text())
        assert runs[prec]["precision"] == (prec or "fp32")
    assert runs[None]["mean_psnr"] == runs["fp32"]["mean_psnr"]
    out_dir = tmp_path / "ev_auto"
    rc, _, err = run(["evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_root, "--out", out_dir,
                      "--no-video", "--precision", "auto"], capsys)
    assert rc == 0, err  # auto is resolved before the rollout, and the resolved precision is recorded
    assert json.loads((out_dir / "summary.json").read_text())["precision"] == perf.resolve_precision("auto")
    assert abs(runs["bf16"]["mean_psnr"] - runs["fp32"]["mean_psnr"]) < 1.0
    rc, _, err = run(["evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_root, "--precision", "fp16"], capsys)
    assert rc == 2 and "invalid choice: 'fp16'" in err
    first = synth_root / "test" / "test_img" / "1" / "frame0.png"
    poses = synth_root / "test" / "test_label" / "1"
    frames = {}
    for prec in ("fp32", "bf16"):
        rc, _, err = run(["predict", "--checkpoint", tiny_checkpoint, "--out", tmp_path / prec, "--first-frame",
                          first, "--poses", poses, "--precision", prec], capsys)
        assert rc == 0, err
        frames[prec] = np.stack([np.asarray(Image.open(tmp_path / prec / "prediction" / f"frame{n}.png"), dtype=float)
                                 for n in range(SYNTH["test_len"])])
    mse = ((frames["fp32"] - frames["bf16"]) / 255.0) ** 2
    assert 10 * np.log10(1.0 / max(mse.mean(), 1e-12)) > 25  # dB between the two PNG sequences


def test_predict_from_first_frame_and_pose_folder(tiny_checkpoint: Path, synth_root: Path, tmp_path: Path,
                                                  capsys) -> None:
    first = synth_root / "test" / "test_img" / "1" / "frame0.png"
    poses = synth_root / "test" / "test_label" / "1"
    rc, out, err = run(["predict", "--checkpoint", tiny_checkpoint, "--out", tmp_path / "p", "--first-frame", first,
                        "--poses", poses, "--seed", "3"], capsys)
    assert rc == 0, err
    folder = tmp_path / "p" / "prediction"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"frame{n}.png" for n in range(SYNTH["test_len"]))
    assert np.array_equal(np.asarray(Image.open(folder / "frame0.png")), np.asarray(Image.open(first)))
    with Image.open(tmp_path / "p" / "prediction.gif") as im:
        assert im.n_frames == SYNTH["test_len"]
    # same seed, same frames
    rc, _, _ = run(["predict", "--checkpoint", tiny_checkpoint, "--out", tmp_path / "q", "--first-frame", first,
                    "--poses", poses, "--seed", "3"], capsys)
    assert rc == 0
    for n in range(SYNTH["test_len"]):
        assert (folder / f"frame{n}.png").read_bytes() == (tmp_path / "q" / "prediction" / f"frame{n}.png").read_bytes()


def test_predict_from_the_test_layout_writes_the_submission(tiny_checkpoint: Path, synth_root: Path,
                                                           tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "p"
    rc, out, err = run(["predict", "--checkpoint", tiny_checkpoint, "--out", out_dir, "--test-data", synth_root],
                       capsys)
    assert rc == 0, err
    assert "submission" in out
    lines = (out_dir / "submission.csv").read_text().splitlines()
    assert lines[0] == "id," + ",".join(str(i) for i in range(6144))
    table = np.array([[int(v) for v in line.split(",")] for line in lines[1:]])
    T = SYNTH["test_len"]
    assert table.shape == (2 * T, 6145)
    assert table[:, 0].tolist() == list(range(2 * T))  # every frame of every sequence, ids from 0
    for k in range(2):
        for n in range(T):
            png = np.asarray(Image.open(out_dir / f"test_{k}" / f"frame{n}.png"))  # [32, 64, 3]
            assert np.array_equal(table[k * T + n, 1:], png.transpose(2, 0, 1).reshape(-1)), (k, n)  # C, H, W
        first = np.asarray(Image.open(synth_root / "test" / "test_img" / str(k) / "frame0.png"))
        assert np.array_equal(table[k * T, 1:], first.transpose(2, 0, 1).reshape(-1))
        assert (out_dir / f"test_{k}.gif").exists()


def test_train_with_minutes_plans_then_plans_again_after_the_first_epoch(synth_root: Path, tmp_path: Path,
                                                                         capsys) -> None:
    out = tmp_path / "run"
    rc, stdout, err = run(["train", "--preset", "tiny", "--data", synth_root, "--out", out, "--minutes", "0.02",
                           "--no-progress"], capsys)
    assert rc == 0, err
    assert "epochs (optim.num_epoch)" in stdout and "budget: the first epoch took" in stdout
    epochs = cfgmod.load(out / "config.yaml").optim.num_epoch
    assert f"epoch {epochs}/{epochs} " in stdout  # the run trained the count its config records


# -- demo ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_demo_completes(tmp_path: Path, capsys, monkeypatch) -> None:
    real = demo_mod.write_synthetic_dataset

    def smaller(out, **kw):  # the demo's data, cut to a few clips so that this runs in seconds
        return real(out, **{**kw, "train_sequences": 1, "train_len": 48, "val_len": 20, "test_len": 10})

    monkeypatch.setattr(demo_mod, "write_synthetic_dataset", smaller)
    rc, out, err = run(["demo", "--minutes", "0.1", "--out", tmp_path / "demo"], capsys)
    assert rc == 0, err
    d = tmp_path / "demo"
    for rel in ("run/checkpoints/last.ckpt", "run/metrics.csv", "eval/psnr_per_frame.png", "eval/val.gif",
                "eval/val.mp4", "eval/summary.json", "report/index.html"):
        assert (d / rel).exists(), rel
    summary = json.loads((d / "eval" / "summary.json").read_text())
    b = summary["baselines"]
    assert f"posecast            {summary['mean_psnr']:6.2f} dB" in out
    assert f"copying frame 0     {b['copy_first']:6.2f} dB" in out and f"the median frame    {b['median_frame']:6.2f} dB" in out
    assert f"HTML report:         {d / 'report' / 'index.html'}" in out
    assert "demo recipe" in out


def test_threads_flag_parses_numbers_auto_and_none() -> None:
    import argparse

    from posecast.cli.common import threads_arg

    assert threads_arg("2") == 2 and threads_arg("auto") == "auto" and threads_arg("none") is None
    for bad in ("0", "x", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            threads_arg(bad)


def test_version_and_help_of_every_command(capsys) -> None:
    from posecast import __version__

    assert run(["--version"], capsys)[:2] == (0, f"posecast {__version__}\n")
    commands = ["synth", "train", "evaluate", "predict", "demo", "plot", "report", "study", "poses"]
    rc, out, _ = run(["-h"], capsys)
    assert rc == 0 and all(c in out for c in commands)
    for command in commands:
        rc, out, err = run([command, "-h"], capsys)
        assert rc == 0 and out.startswith(f"usage: posecast {command}") and not err, command
    assert "--grad_clip" in run(["train", "-h"], capsys)[1] and "--grad_clip" in run(["study", "-h"], capsys)[1]


def test_config_flag_types_follow_the_dataclasses() -> None:
    cfg = _parse_train(["--channels_last", "false", "--first_frame_cond", "--threads", "auto", "--max_time", "90",
                        "--clip_stride", "null"])
    assert cfg.runtime.channels_last is False and cfg.model.first_frame_cond is True
    assert cfg.data.clip_stride is None
    assert cfg.runtime.threads == "auto" and cfg.runtime.max_time == 90.0
