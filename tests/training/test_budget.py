"""`--minutes M` (posecast.training.budget): the epoch count that fits a budget, measured here."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posecast import config as cfgmod
from posecast.training.budget import Plan, Replan, epochs_within, first_epoch_alike, plan_epochs, set_epochs, validations
from posecast.training.trainer import Trainer
from posecast_testing import tiny_config


def test_validations_and_epochs_within_a_budget() -> None:
    assert [validations(n, 100) for n in (1, 99, 100, 101, 250)] == [1, 1, 1, 2, 3]
    assert [validations(n, 1) for n in (1, 5)] == [1, 5]
    # 10 s epochs, a 5 s validation every 100 epochs (and the last): 3600 s hold 356 epochs + 4 validations
    assert epochs_within(3600, 10.0, 5.0, 100) == 358
    assert 358 * 10 + validations(358, 100) * 5 <= 3600 < 359 * 10 + validations(359, 100) * 5
    assert epochs_within(3600, 10.0, 20.0, 1) == 120  # a validation every epoch: 30 s an epoch
    assert epochs_within(5, 10.0, 5.0, 1) == 1  # at least one epoch


def test_plan_sets_the_epochs_and_a_run_with_that_count_repeats_the_weights(synth_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(val_every=1, tfr_sde=0, num_epoch=1000)  # a count no budget here plans
    planned, plan = plan_epochs(cfg, synth_root, 0.02)  # 1.2 s
    assert planned.optim.num_epoch == plan.epochs >= 1
    assert plan.step_seconds > 0 and plan.val_seconds > 0 and plan.steps_per_epoch >= 1
    assert plan.epochs * plan.epoch_seconds + validations(plan.epochs, 1) * plan.val_seconds <= 1.2 or plan.epochs == 1
    assert "epochs (optim.num_epoch)" in plan.describe()
    assert cfgmod.config_diff(planned, cfg) == {"optim.num_epoch": (plan.epochs, cfg.optim.num_epoch)}
    assert plan_epochs(cfgmod.override(cfg, minutes=5.0), synth_root, 0.02)[0].optim.minutes is None  # the count kept
    a = Trainer(planned, synth_root, tmp_path / "a", progress=False, log=lambda _m: None,
                train_seq=plan.train_seq, val_seqs=plan.val_seqs)
    a.fit()
    b = Trainer(cfgmod.override(cfg, num_epoch=plan.epochs), synth_root, tmp_path / "b", progress=False,
                log=lambda _m: None)
    b.fit()
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # the probe left nothing behind: the same weights
    assert cfgmod.load(a.run.config_path).optim.num_epoch == plan.epochs  # recorded in the run's config


@pytest.mark.parametrize("extra, message", [(["--minutes", "0"], "--minutes: a training budget > 0"),
                                            (["--minutes", "5", "--resume", "x"], "--minutes: a resumed run")])
def test_bad_minutes_stop_with_one_line(extra: list[str], message: str, synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "posecast.cli", "train", "--preset", "tiny", "--data", str(synth_root),
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_a_budget_too_short_for_the_schedule_says_so(synth_root: Path) -> None:
    with pytest.raises(cfgmod.ConfigError, match=r"--minutes 0.0001 holds 1 epoch\(s\) here: schedule.tfr_sde"):
        plan_epochs(tiny_config(tfr_sde=1), synth_root, 0.0001)


@pytest.mark.parametrize("argv, expected", [([], 60.0), (["--minutes", "5"], 5.0), (["--num_epoch", "3"], None),
                                            (["--num_epoch", "3", "--minutes", "5"], 5.0)])
def test_the_budget_is_the_recipes_unless_a_count_is_given(argv: list[str], expected: float | None) -> None:
    """`--preset best` plans its optim.minutes (60); --num_epoch alone trains that count instead."""
    from posecast import cli
    from posecast.cli.common import config_from
    from posecast.cli.train import _budget

    args = cli.build_parser().parse_args(["train", "--data", "x", "--preset", "best", *argv])
    assert _budget(args, config_from(args)) == expected


@pytest.mark.parametrize("first, then", [(3, 5), (4, 2)])
def test_a_count_set_after_the_first_epoch_repeats_a_run_started_with_it(first: int, then: int, synth_root: Path,
                                                                          tmp_path: Path) -> None:
    """set_epochs (the budget's re-plan): the cosine, the schedules and config.yaml as if the run had
    started with the new count, so `--num_epoch` with it repeats the weights."""
    cfg = tiny_config(val_every=1, tfr_sde=0, lr_schedule="cosine")
    a = Trainer(cfgmod.override(cfg, num_epoch=first), synth_root, tmp_path / "a", progress=False, log=lambda _m: None)
    a.fit(after_epoch=lambda t, _row: set_epochs(t, then) if t.epoch == 1 else None)
    b = Trainer(cfgmod.override(cfg, num_epoch=then), synth_root, tmp_path / "b", progress=False, log=lambda _m: None)
    b.fit()
    assert a.epoch == b.epoch == then
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.optimizer.param_groups[0]["lr"] == b.optimizer.param_groups[0]["lr"]
    assert a.scheduler.state_dict() == b.scheduler.state_dict()
    assert cfgmod.load(a.run.config_path).optim.num_epoch == then


def _six(_epoch: int) -> int:
    return 6


def test_epoch_0_alike_under_any_count_unless_a_schedule_depends_on_it() -> None:
    assert first_epoch_alike(tiny_config(num_epoch=10, kl_anneal_type="None"), 37, _six)
    assert first_epoch_alike(tiny_config(num_epoch=10, kl_anneal_type="Cyclical", kl_anneal_per="epoch"), 37, _six)
    # a KL weight that rises over the steps of a cycle whose length is a fraction of the count
    assert not first_epoch_alike(tiny_config(num_epoch=10, kl_anneal_type="Cyclical", kl_anneal_per="step"), 37, _six)
    # L1 for the first tenth of the epochs: epoch 0 of 10 has it, of 37 too
    assert first_epoch_alike(tiny_config(num_epoch=10, recon="l1", recon_until=0.1), 37, _six)


def _plan(minutes: float, epochs: int) -> Plan:
    return Plan(minutes=minutes, epochs=epochs, step_seconds=0.01, steps_per_epoch=2, val_seconds=0.01,
                train_seq=None, val_seqs=[])  # type: ignore[arg-type]


@pytest.mark.parametrize("val_every, fits, expected", [(100, 4, 4), (100, 3, 3), (100, 1, 2), (1, 1, 1)])
def test_replan_times_the_first_epoch_and_sets_the_count_that_fits(val_every: int, fits: int, expected: int,
                                                                   synth_root: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    """The count that fits, at least one more than done unless epoch 0 validated (the last epoch validates)."""
    from posecast.training import budget

    seen: list[tuple[float, float, float]] = []

    def within(seconds: float, epoch_seconds: float, val_seconds: float, every: int) -> int:
        seen.append((seconds, epoch_seconds, val_seconds))
        return fits

    monkeypatch.setattr(budget, "epochs_within", within)
    logged: list[str] = []
    t = Trainer(tiny_config(val_every=val_every, tfr_sde=0, num_epoch=3), synth_root, tmp_path / "r", progress=False,
                log=logged.append)
    replan = Replan(_plan(0.5, 3))
    t.fit(after_epoch=replan)
    assert len(seen) == 1 and seen[0][0] == 30.0 and seen[0][1] > 0 and seen[0][2] == 0.01  # once, after epoch 1
    assert t.epoch == replan.epochs == expected
    assert cfgmod.load(t.run.config_path).optim.num_epoch == expected
    assert torch.load(t.run.last_ckpt, weights_only=True)["config"]["optim"]["num_epoch"] == expected
    assert replan.note in logged and ("kept" in replan.note) == (expected == 3)
    assert t.run.read_log()[1][-1]["val_psnr"]  # the last epoch validated


class _Killed(Exception):
    pass


def _kill_after_epoch_1(hook):
    def after(t: Trainer, row: dict) -> None:
        hook(t, row)
        if t.epoch == 1:
            raise _Killed
    return after


@pytest.mark.parametrize("cut", [False, True])
def test_a_run_killed_after_the_replan_resumes_to_the_weights_of_its_count(cut: bool, synth_root: Path,
                                                                           tmp_path: Path, monkeypatch) -> None:
    """Re-planned from 3 to 5 epochs, killed after epoch 1, resumed from config.yaml: the weights (and the
    moving average) of a run started with 5. ``cut``: killed inside the re-plan, config.yaml already
    saying 5 and last.ckpt holding the cosine of 3."""
    from posecast.training import budget

    monkeypatch.setattr(budget, "epochs_within", lambda *_a: 5)
    cfg = tiny_config(val_every=100, tfr_sde=0, num_epoch=3, lr_schedule="cosine", ema_decay=0.9)
    quiet = {"progress": False, "log": lambda _m: None}
    a = Trainer(cfg, synth_root, tmp_path / "a", **quiet)
    hook = (lambda t, _row: t.run.write_config(cfgmod.override(t.cfg, num_epoch=5))) if cut else Replan(_plan(0.5, 3))
    with pytest.raises(_Killed):
        a.fit(after_epoch=_kill_after_epoch_1(hook))
    saved = cfgmod.load(a.run.config_path)
    assert saved.optim.num_epoch == 5
    resumed = Trainer(saved, synth_root, tmp_path / "a", **quiet)
    resumed.fit(resume=True)
    fresh = Trainer(cfgmod.override(cfg, num_epoch=5), synth_root, tmp_path / "b", **quiet)
    fresh.fit()
    assert resumed.epoch == fresh.epoch == 5
    for x, y in ((resumed.model, fresh.model), (resumed.ema.module, fresh.ema.module)):
        sx, sy = x.state_dict(), y.state_dict()
        assert all(torch.equal(sx[k], sy[k]) for k in sx)


def test_replan_keeps_the_count_where_epoch_0_depends_on_it(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    from posecast.training import budget

    monkeypatch.setattr(budget, "epochs_within", lambda *_a: 5)
    cfg = tiny_config(val_every=100, tfr_sde=0, num_epoch=3, kl_anneal_type="Cyclical", kl_anneal_per="step")
    t = Trainer(cfg, synth_root, tmp_path / "r", progress=False, log=lambda _m: None)
    replan = Replan(_plan(0.5, 3))
    t.fit(after_epoch=replan)
    assert t.epoch == replan.epochs == 3 and "depends on the count" in replan.note


def test_replan_scales_the_first_epochs_steps_to_a_steady_epoch(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    """data.fast_train makes epoch 0 shorter than the steady epochs: the re-plan times its steps and counts
    the plan's steady steps per epoch (here 10 times epoch 0's), plus a checkpoint."""
    from posecast.training import budget

    seen: list[float] = []
    monkeypatch.setattr(budget, "epochs_within", lambda _s, epoch_s, _v, _e: seen.append(epoch_s) or 3)
    t = Trainer(tiny_config(val_every=100, tfr_sde=0, num_epoch=3), synth_root, tmp_path / "r", progress=False,
                log=lambda _m: None)
    first = t.sampler.num_batches(0)
    plan = Plan(minutes=0.5, epochs=3, step_seconds=0.01, steps_per_epoch=10 * first, val_seconds=0.01,
                train_seq=None, val_seqs=[])  # type: ignore[arg-type]
    t.fit(after_epoch=Replan(plan))
    epoch0 = float(t.run.read_log()[1][0]["epoch_time"])
    assert len(seen) == 1 and 10 * epoch0 <= seen[0] < 10 * epoch0 + 5.0
