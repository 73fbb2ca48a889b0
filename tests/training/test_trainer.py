"""The training loop: run folder contents, resume, determinism, non-finite losses, data options
(the sampling functions themselves: tests/data/test_sampling.py)."""
from __future__ import annotations

import csv
import dataclasses
import math
import shutil
from pathlib import Path

import pytest
import torch

import posecast.training.step as step_mod
from posecast import config as cfgmod
from posecast.data.lab import DataError
from posecast.io.checkpoint import load_checkpoint
from posecast.training.schedules import kl_beta, teacher_forcing_ratio
from posecast.training.run import METRIC_FIELDS, tensorboard_writer
from posecast.training.trainer import NonFiniteLossError, Trainer
from posecast_testing import (SYNTH, leftover_temp_files, tensorboard_scalars, tiny_config, train_until_interrupted,
                              write_split)

TRAIN_CLIPS = SYNTH["train_len"] // 4  # tiny: clips of 4 frames, batches of 2 -> 3 steps per epoch
VAL_FRAMES = SYNTH["val_len"]
TIMING = ("epoch_time", "elapsed")


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _ckpts(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


class _Recorder:
    """Wraps the step function to record (tf_mask, beta) of training calls; can poison one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, nan_at: int | None = None) -> None:
        self.calls: list[tuple[torch.Tensor | None, float]] = []
        self.nan_at = nan_at
        self._orig = step_mod.loss_step
        monkeypatch.setattr(step_mod, "loss_step", self)

    def __call__(self, model, batch, tf_mask, beta, **options):
        out = self._orig(model, batch, tf_mask, beta, **options)
        if torch.is_grad_enabled():  # training, not validation
            self.calls.append((None if tf_mask is None else tf_mask.clone(), beta))
            if len(self.calls) == self.nan_at:
                out = dataclasses.replace(out, loss=out.loss * float("nan"))
        return out


# -- what a run writes ------------------------------------------------------------------------------
def test_metrics_csv_rows(trained_run) -> None:
    trainer, run_dir, _ = trained_run
    rows = _rows(run_dir)
    with (run_dir / "metrics.csv").open() as f:
        assert f.readline().strip() == ",".join(METRIC_FIELDS)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert [int(r["step"]) for r in rows] == [3, 6]
    assert [float(r["tfr"]) for r in rows] == [1.0, 0.9]  # tiny: tfr_sde 1, d_step 0.1
    assert [float(r["beta"]) for r in rows] == [0.0, 0.5]  # tiny: 1 cycle over 2 epochs
    assert [float(r["lr"]) for r in rows] == [0.001, 0.001]
    for r in rows:
        for k in ("train_loss", "train_mse", "train_kl", "val_loss", "val_mse", "val_kl", "val_psnr",
                  "val_ssim", "val_psnr_min", "epoch_time", "elapsed"):
            assert math.isfinite(float(r[k])), k
        assert float(r["train_loss"]) == pytest.approx(float(r["train_mse"]) + float(r["beta"]) * float(r["train_kl"]),
                                                       rel=1e-5)
        assert float(r["val_psnr_min"]) <= float(r["val_psnr"])
    assert float(rows[1]["elapsed"]) >= float(rows[0]["elapsed"])
    assert trainer.epoch == 2 and trainer.step == 6


def test_validation_csv_per_frame(trained_run) -> None:
    _, run_dir, _ = trained_run
    assert sorted(p.name for p in (run_dir / "val").iterdir()) == ["epoch_000.csv", "epoch_001.csv"]
    rows = _rows(run_dir)
    for e in (0, 1):
        with (run_dir / "val" / f"epoch_{e:03d}.csv").open(newline="") as f:
            frames = list(csv.DictReader(f))
        assert list(frames[0]) == ["sequence", "frame", "psnr", "ssim"]
        assert [int(r["frame"]) for r in frames] == list(range(1, VAL_FRAMES))  # frame 0 is given
        assert {r["sequence"] for r in frames} == {"val"}
        mean = sum(float(r["psnr"]) for r in frames) / len(frames)
        assert mean == pytest.approx(float(rows[e]["val_psnr"]), abs=1e-3)
        assert min(float(r["psnr"]) for r in frames) == pytest.approx(float(rows[e]["val_psnr_min"]), abs=1e-3)


def test_checkpoints_and_config(trained_run) -> None:
    trainer, run_dir, lines = trained_run
    assert _ckpts(run_dir) == ["best.ckpt", "epoch_001.ckpt", "epoch_002.ckpt", "last.ckpt"]  # per_save 1
    assert leftover_temp_files(run_dir) == []
    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 2 and last["step"] == 6
    assert set(last) >= {"config", "model", "optimizer", "scheduler", "rng", "best_psnr"}
    assert load_checkpoint(run_dir / "checkpoints" / "epoch_001.ckpt")["epoch"] == 1
    assert cfgmod.load(run_dir / "config.yaml") == trainer.cfg
    assert cfgmod.from_dict(last["config"]) == trainer.cfg
    assert last["best_psnr"] == pytest.approx(max(float(r["val_psnr"]) for r in _rows(run_dir)))
    assert any("epoch 1/2" in line for line in lines) and any("epoch 2/2" in line for line in lines)


# -- resume --------------------------------------------------------------------------------------
def test_resume_continues_at_the_right_epoch_with_the_right_schedules(trained_run, synth_root: Path,
                                                                     tmp_path: Path, monkeypatch) -> None:
    _, src, _ = trained_run
    run_dir = tmp_path / "run"
    shutil.copytree(src, run_dir)
    before = _rows(run_dir)
    started: list[int] = []
    orig = Trainer._epoch

    def spy(self):
        started.append(self.epoch)
        return orig(self)

    monkeypatch.setattr(Trainer, "_epoch", spy)
    cfg = tiny_config(num_epoch=3)
    lines: list[str] = []
    trainer = Trainer(cfg, synth_root, run_dir, progress=False, log=lines.append)
    trainer.fit(resume=True)
    assert started == [2]
    assert any("resumed" in line and "epoch 2" in line for line in lines)
    rows = _rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for old, new in zip(before, rows):
        assert old == new  # earlier rows kept as they were, never duplicated
    assert int(rows[2]["step"]) == 9
    assert float(rows[2]["tfr"]) == teacher_forcing_ratio(2, tfr_sde=1, tfr_d_step=0.1) == 0.8
    assert float(rows[2]["beta"]) == kl_beta(2, 3, n_cycle=1) == 0.666666666667
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 3
    assert "epoch_003.ckpt" in _ckpts(run_dir)


def test_resume_without_a_checkpoint_starts_fresh(synth_root: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(num_epoch=1, tfr_sde=0), synth_root, tmp_path / "r", progress=False,
                      log=lambda _: None)
    trainer.fit(resume=True)
    assert [int(r["epoch"]) for r in _rows(tmp_path / "r")] == [0]


@pytest.mark.slow
def test_interrupted_run_resumes_bitwise(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    cfg = tiny_config(num_epoch=3, milestones=[1, 2], gamma=0.5, tfr_flip="step", tfr=0.9,
                      kl_anneal_cycle=1, val_every=2, seed=5)
    quiet = dict(progress=False, log=lambda _: None)
    whole = Trainer(cfg, synth_root, tmp_path / "whole", **quiet)
    whole.fit()

    train_until_interrupted(cfg, synth_root, tmp_path / "split", monkeypatch)  # Ctrl-C after epoch 1's checkpoint
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "last.ckpt")["epoch"] == 1
    assert len(_rows(tmp_path / "split")) == 1

    resumed = Trainer(cfg, synth_root, tmp_path / "split", **quiet)
    resumed.fit(resume=True)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    oa, ob = whole.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for i in oa:
        for k in oa[i]:
            assert torch.equal(torch.as_tensor(oa[i][k]), torch.as_tensor(ob[i][k]))
    ra, rb = _rows(tmp_path / "whole"), _rows(tmp_path / "split")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(ra) == strip(rb)
    assert [float(r["lr"]) for r in rb] == [0.001, 0.0005, 0.00025]  # the LR scheduler was restored
    assert [r["val_psnr"] == "" for r in rb] == [True, False, False]  # val_every 2, and the last epoch
    assert sorted(p.name for p in (tmp_path / "split" / "val").iterdir()) == ["epoch_001.csv", "epoch_002.csv"]
    for name in ("epoch_001.csv", "epoch_002.csv"):
        assert (tmp_path / "whole" / "val" / name).read_text() == (tmp_path / "split" / "val" / name).read_text()


# -- non-finite losses ----------------------------------------------------------------------------
def test_nonfinite_loss_stops_naming_the_epoch_and_keeps_the_last_checkpoint(synth_root: Path, tmp_path: Path,
                                                                           monkeypatch) -> None:
    _Recorder(monkeypatch, nan_at=TRAIN_CLIPS // 2 + 1)  # first batch of the second epoch
    trainer = Trainer(tiny_config(), synth_root, tmp_path / "r", progress=False, log=lambda _: None)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    msg = str(info.value)
    assert "epoch 2" in msg and "batch 1" in msg and "nan" in msg.lower()
    assert str(tmp_path / "r" / "checkpoints") in msg  # says where the good checkpoint is
    last = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    assert [int(r["epoch"]) for r in _rows(tmp_path / "r")] == [0]


@pytest.mark.slow
def test_skip_nonfinite_skips_the_batch(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    rec = _Recorder(monkeypatch, nan_at=2)
    lines: list[str] = []
    cfg = tiny_config(skip_nonfinite=True, per_save=2)
    trainer = Trainer(cfg, synth_root, tmp_path / "r", progress=False, log=lines.append)
    trainer.fit()
    assert len(rec.calls) == 2 * TRAIN_CLIPS // 2 and trainer.step == len(rec.calls) - 1
    assert any("skipped" in line and "epoch 1" in line for line in lines)
    rows = _rows(tmp_path / "r")
    assert [int(r["step"]) for r in rows] == [2, 5]
    assert all(math.isfinite(float(r["train_loss"])) for r in rows)
    assert _ckpts(tmp_path / "r") == ["best.ckpt", "epoch_002.ckpt", "last.ckpt"]  # per_save 2


# -- data options -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_fast_train_in_a_run(synth_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(fast_train=True, fast_partial=0.5, fast_train_epoch=1)
    Trainer(cfg, synth_root, tmp_path / "r", progress=False, log=lambda _: None).fit()
    assert [int(r["step"]) for r in _rows(tmp_path / "r")] == [2, 5]  # 3 clips, then 6 (batches of 2)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["epoch", "batch", "step"])
def test_tf_coin_in_training(mode: str, synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    rec = _Recorder(monkeypatch)
    cfg = tiny_config(num_epoch=1, tfr_sde=0, tfr=0.5, tfr_d_step=0.0, tfr_flip=mode, batch_size=1)
    Trainer(cfg, synth_root, tmp_path / "r", progress=False, log=lambda _: None).fit()
    masks = [m for m, _ in rec.calls]
    assert len(masks) == TRAIN_CLIPS and all(m.shape == (3,) for m in masks)
    uniform = [bool(m.all() or not m.any()) for m in masks]
    forced = float(_rows(tmp_path / "r")[0]["teacher_forced"])
    if mode == "epoch":
        assert all(torch.equal(m, masks[0]) for m in masks) and all(uniform)
        assert forced in (0.0, 1.0)
    elif mode == "batch":
        assert all(uniform) and len({bool(m[0]) for m in masks}) == 2
    else:
        assert not all(uniform)
    assert forced == pytest.approx(float(torch.stack(masks).float().mean()))


def test_max_time_stops_after_the_epoch_that_passes_it(synth_root: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    Trainer(tiny_config(max_time=1e-6), synth_root, tmp_path / "r", progress=False, log=lines.append).fit()
    assert [int(r["epoch"]) for r in _rows(tmp_path / "r")] == [0]
    assert any("time budget" in line for line in lines)


def test_fewer_frames_than_one_clip(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 3)
    write_split(tmp_path, "val", 6)
    with pytest.raises(DataError, match="fewer than one training clip"):
        Trainer(tiny_config(frame_H=8, frame_W=12), tmp_path, tmp_path / "run", progress=False)


# per-step KL annealing counts every batch, the last partial one included (was floor(clips / batch))
@pytest.mark.slow
def test_per_step_beta_counts_every_batch(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    rec = _Recorder(monkeypatch)
    cfg = tiny_config(batch_size=4, kl_anneal_per="step", kl_anneal_cycle=1)  # 6 clips: batches of 4 and 2
    trainer = Trainer(cfg, synth_root, tmp_path / "r", progress=False, log=lambda _: None)
    assert len(trainer.sampler.batches(0)) == 2
    assert trainer.schedules.steps_per_epoch == [2] * cfg.optim.num_epoch
    trainer.fit()
    assert [b for _, b in rec.calls] == [0.0, 0.25, 0.5, 0.75]


def test_per_step_beta_spans_epochs_of_different_lengths(synth_root: Path, tmp_path: Path) -> None:
    """With data.fast_train the first epochs have fewer steps: per-step KL annealing counts the
    steps every epoch really has (not epoch 0's count for every epoch)."""
    cfg = tiny_config(num_epoch=3, kl_anneal_per="step", kl_anneal_type="Monotonic", kl_anneal_ratio=1.0,
                      fast_train=True, fast_partial=0.5, fast_train_epoch=1)
    trainer = Trainer(cfg, synth_root, tmp_path / "r", progress=False, log=lambda _: None)
    counts = [len(trainer.sampler.batches(e)) for e in range(3)]
    assert counts[0] < counts[1] == counts[2]
    total = sum(counts)
    betas = [trainer.schedules.beta(e, i) for e in range(3) for i in range(counts[e])]
    assert betas == [round(s / total, 12) for s in range(total)]  # one rise over every step of the run
    assert [trainer.schedules.beta(e) for e in range(3)] == [0.0, round(counts[0] / total, 12),
                                                            round((counts[0] + counts[1]) / total, 12)]


# -- known bugs for the lead (trainer.py) ----------------------------------------------------------
def test_fewer_frames_than_one_clip_names_the_folder(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 3)
    write_split(tmp_path, "val", 6)
    with pytest.raises(DataError) as info:
        Trainer(tiny_config(frame_H=8, frame_W=12), tmp_path, tmp_path / "run", progress=False)
    assert str(tmp_path / "train") in str(info.value)


def test_validation_split_too_short(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 8)
    write_split(tmp_path, "val", 1)
    with pytest.raises(DataError) as info:
        Trainer(tiny_config(frame_H=8, frame_W=12, num_epoch=1, tfr_sde=0), tmp_path, tmp_path / "run",
                progress=False, log=lambda _: None).fit()
    assert str(tmp_path / "val") in str(info.value)


# -- speed options in the trainer ------------------------------------------------------------------
@pytest.mark.slow
def test_channels_last_bf16_training_matches_the_plain_path(synth_root: Path, tmp_path: Path) -> None:
    """runtime.channels_last only changes the memory layout (the same losses in fp32); bf16 autocast
    keeps the losses and the val PSNR close, and checkpoints keep fp32 weights. (Weights after
    Adam are not compared: Adam turns last-bit gradient differences into lr-sized steps.)"""
    def run(name: str, **kw) -> tuple[Trainer, list[dict[str, str]]]:
        tr = Trainer(tiny_config(num_epoch=2, **kw), synth_root, tmp_path / name, progress=False, log=lambda s: None)
        tr.fit()
        return tr, _rows(tmp_path / name)

    _, plain = run("plain")
    tr_cl, cl = run("cl", channels_last=True)
    conv = tr_cl.model.frame_encoder.network[0].conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    _, bf = run("bf", channels_last=True, precision="bf16")
    state = load_checkpoint(tmp_path / "bf" / "checkpoints" / "last.ckpt")["model"]
    assert all(v.dtype == torch.float32 for v in state.values())
    assert float(cl[0]["train_loss"]) == pytest.approx(float(plain[0]["train_loss"]), rel=2e-3)
    for rows, tol in ((cl, 0.05), (bf, 0.5)):
        assert float(rows[0]["train_loss"]) == pytest.approx(float(plain[0]["train_loss"]), rel=0.05)
        assert abs(float(rows[-1]["val_psnr"]) - float(plain[-1]["val_psnr"])) < tol


@pytest.mark.parametrize("value, ok", [(1, True), ("auto", True), (None, True), (0, False), ("many", False)])
def test_threads_option_is_checked(value, ok) -> None:
    if ok:
        assert tiny_config(threads=value).validate().runtime.threads == value
    else:
        with pytest.raises(cfgmod.ConfigError, match="runtime.threads"):
            tiny_config(threads=value).validate()


@pytest.mark.slow
@pytest.mark.parametrize("anchor_range", [0, 3])
def test_random_anchors_come_from_the_split_within_range(synth_root: Path, tmp_path: Path, anchor_range: int,
                                                          monkeypatch) -> None:
    cfg = tiny_config(num_epoch=2, anchor="random", anchor_range=anchor_range, first_frame_cond=True)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    orig = step_mod.loss_step

    def record(model, batch, tf_mask, beta, **options):
        if torch.is_grad_enabled():
            seen.append((batch.frames[:, 0].clone(), batch.anchor.clone()))
        return orig(model, batch, tf_mask, beta, **options)

    monkeypatch.setattr(step_mod, "loss_step", record)
    tr = Trainer(cfg, synth_root, tmp_path / "r", progress=False, log=lambda s: None)
    tr.fit()
    frames = tr.train_seq.frames
    n = len(frames)
    assert len(seen) == 2 * -(-(n // 4) // 2)  # every training batch got anchors
    far = 0
    for clip0, anchor in seen:
        for c, a in zip(clip0, anchor):
            ia = [i for i in range(n) if torch.equal(frames[i], a)]
            ic = [i for i in range(n) if torch.equal(frames[i], c)]
            assert ia and ic
            if anchor_range:
                assert min(abs(x - y) for x in ia for y in ic) <= anchor_range
            far += min(abs(x - y) for x in ia for y in ic) > 0
    assert far > 0  # not simply the clip's own first frame


@pytest.mark.slow
def test_restart_before_the_first_checkpoint_hides_the_killed_run_s_epoch_0(synth_root: Path, tmp_path: Path) -> None:
    """A run killed after logging epoch 0 but before its checkpoint, then trained again in its
    folder: TensorBoard shows epoch 0 once, the new run's value (the earlier file is purged)."""
    import time

    from torch.utils.tensorboard import SummaryWriter

    run_dir = tmp_path / "run"
    old = SummaryWriter(str(run_dir / "tensorboard"))
    old.add_scalar("train_loss", 123.0, 0)
    old.close()
    Trainer(tiny_config(), synth_root, run_dir, progress=False, log=lambda s: None).fit()
    points = tensorboard_scalars(run_dir)["train_loss"]
    assert [step for step, _ in points] == [0, 1] and points[0][1] != 123.0
    files = sorted(p.name for p in (run_dir / "tensorboard").iterdir())
    assert len(files) == 2 and int(files[1].split(".")[3]) > int(files[0].split(".")[3])  # sorts last
    # an event file stamped in the future (a clock stepped back) holds the start up for ~1 s, not longer
    future = run_dir / "tensorboard" / f"events.out.tfevents.{int(time.time()) + 60}.host.1.0"
    future.write_bytes(b"")
    t0 = time.monotonic()
    tensorboard_writer(run_dir / "tensorboard", start_epoch=1).close()
    assert time.monotonic() - t0 < 10
