"""Plots from logged runs: each figure shows the logged values, with labels, titles and legends."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from posecast import cli
from posecast import config as cfgmod
from posecast.analysis import plots
from posecast.training import run as run_folder
from posecast.training.schedules import Schedules


def _cfg(**over):
    return cfgmod.override(cfgmod.preset("small"), num_epoch=6, tfr_sde=2, tfr_d_step=0.25, kl_anneal_cycle=2,
                           **over)


def _by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def _axis(fig, ylabel_part):
    found = [a for a in fig.axes if ylabel_part in a.get_ylabel()]
    assert len(found) == 1, [a.get_ylabel() for a in fig.axes]
    return found[0]


def _check_png(path, min_w=400, min_h=250):
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        assert w >= min_w and h >= min_h
        arr = np.asarray(im.convert("L"))
    assert arr.std() > 5  # drawn, not blank


def test_metric_columns_are_the_trainers():
    assert plots.METRIC_FIELDS is run_folder.METRIC_FIELDS  # one schema, the Run folder's


def test_schedules_figure_shows_logged_tfr_loss_and_beta(make_run):
    made = make_run("cyc", _cfg(kl_anneal_type="Cyclical"))
    rows = made["rows"]
    fig = plots.figure_schedules(plots.load_run(made["path"]))
    loss_ax = _axis(fig, "loss per clip")
    tfr_ax = _axis(fig, "teacher-forcing ratio")
    beta_ax = _axis(fig, "KL weight")
    assert loss_ax.get_shared_x_axes().joined(loss_ax, beta_ax)  # one epoch axis for both panels
    assert beta_ax.get_xlabel() == "epoch"
    assert loss_ax.get_title() and beta_ax.get_title()
    epochs = [r["epoch"] + 1 for r in rows]

    lines = _by_label(loss_ax)
    assert len(lines) == 2
    np.testing.assert_allclose(lines["training loss (MSE + β·KL)"].get_xdata(), epochs)
    np.testing.assert_allclose(lines["training loss (MSE + β·KL)"].get_ydata(), [r["train_loss"] for r in rows])
    np.testing.assert_allclose(lines["training MSE"].get_ydata(), [r["train_mse"] for r in rows])

    tl = _by_label(tfr_ax)
    assert len(tl) == 2
    # tfr 1, decay 0.25 per epoch from epoch index 2 (the lab's step schedule)
    np.testing.assert_allclose(tl["teacher-forcing ratio (schedule)"].get_ydata(), [1, 1, 0.75, 0.5, 0.25, 0])
    np.testing.assert_allclose(tl["teacher-forced steps (fraction; coin per epoch)"].get_ydata(),
                               [r["teacher_forced"] for r in rows])

    bl = _by_label(beta_ax)
    assert list(bl) == ["β per epoch"]
    # Cyclical, 2 cycles over 6 epochs: 0, 1/3, 2/3 twice
    np.testing.assert_allclose(bl["β per epoch"].get_ydata(), [0, 1 / 3, 2 / 3] * 2, atol=1e-9)
    legend = [t.get_text() for a in fig.axes if a.get_legend() for t in a.get_legend().get_texts()]
    assert "teacher-forcing ratio (schedule)" in legend and "β per epoch" in legend


def test_schedules_figure_beta_per_step_evaluates_the_schedule(make_run):
    cfg = _cfg(kl_anneal_type="Cyclical", kl_anneal_per="step")
    made = make_run("cyc-step", cfg, steps=5)
    run = plots.load_run(made["path"])
    assert run.steps_per_epoch == [5] * 6
    fig = plots.figure_schedules(run)
    bl = _by_label(_axis(fig, "KL weight"))
    assert set(bl) == {"β per optimiser step (schedule)", "β logged (first step of the epoch)"}
    step = bl["β per optimiser step (schedule)"]
    # 30 steps, 2 cycles of 15: beta = (step mod 15) / 15 -- an exact table
    np.testing.assert_allclose(step.get_ydata(), [(p % 15) / 15 for p in range(30)], atol=1e-9)
    np.testing.assert_allclose(step.get_xdata(), [1 + p / 5 for p in range(30)])
    sched = Schedules(cfg, 5)
    np.testing.assert_allclose(step.get_ydata(), [sched.beta(e, i) for e in range(6) for i in range(5)])
    logged = bl["β logged (first step of the epoch)"]
    np.testing.assert_allclose(logged.get_ydata(), [r["beta"] for r in made["rows"]])
    np.testing.assert_allclose(logged.get_ydata(), step.get_ydata()[::5])  # the log lies on the curve


def test_beta_per_step_counts_each_epoch_s_steps(tmp_path):
    # data.fast_train: epoch 0 had 2 steps, the others 3; one rise of beta over all 8 steps
    cfg = cfgmod.override(_cfg(kl_anneal_type="Monotonic", kl_anneal_ratio=1.0, kl_anneal_per="step"), num_epoch=3)
    metrics = {k: np.full(3, np.nan) for k in plots.METRIC_FIELDS}
    metrics.update(epoch=np.arange(3.0), step=np.array([2.0, 5.0, 8.0]))
    run = plots.RunLog(tmp_path, "fast", cfg, metrics)
    assert run.steps_per_epoch == [2, 3, 3]
    xs, beta = run.beta_per_step()
    np.testing.assert_allclose(beta, [p / 8 for p in range(8)], atol=1e-9)
    np.testing.assert_allclose(xs, [1, 1.5, 2, 2 + 1 / 3, 2 + 2 / 3, 3, 3 + 1 / 3, 3 + 2 / 3])


@pytest.mark.parametrize("part,ylabel", [("loss", "loss per clip"), ("mse", "MSE"), ("kl", "KL")])
def test_loss_comparison_has_train_and_val_of_every_run(make_run, part, ylabel):
    kinds = ["Monotonic", "Cyclical", "None"]
    made = [make_run(k.lower(), _cfg(kl_anneal_type=k), offset=i, val_every=2 if k == "None" else 1)
            for i, k in enumerate(kinds)]
    runs = plots.load_runs([m["path"] for m in made])
    fig = plots.figure_losses(runs, part)
    ax = fig.axes[0]
    lines = _by_label(ax)
    assert len(lines) == 6  # train + validation per run
    assert ylabel in ax.get_ylabel() and ax.get_xlabel() == "epoch" and ax.get_title()
    for m, k in zip(made, kinds):
        rows = m["rows"]
        np.testing.assert_allclose(lines[f"{k.lower()} train"].get_ydata(), [r[f"train_{part}"] for r in rows])
        val = [(r["epoch"] + 1, r[f"val_{part}"]) for r in rows if "val_psnr" in r]
        line = lines[f"{k.lower()} validation"]
        np.testing.assert_allclose(line.get_xdata(), [v[0] for v in val])  # epochs without validation skipped
        np.testing.assert_allclose(line.get_ydata(), [v[1] for v in val])
    assert len(ax.get_legend().get_texts()) == 6


def test_psnr_per_frame_of_several_runs_with_means(make_run):
    a = make_run("a", _cfg(), frames=12)
    b = make_run("b", _cfg(), frames=12, offset=1.5, sequences=("s0", "s1"))
    runs = plots.load_runs([a["path"], b["path"]])
    assert runs[0].best_epoch == 4  # 2.0 reached at epochs 3 and 5 (1-based): best.ckpt holds the later
    fig = plots.figure_rollout(runs, "best")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "frame index" and ax.get_ylabel() == "PSNR (dB)" and "best epoch" in ax.get_title()
    lines = ax.get_lines()
    assert len(lines) == 4  # a curve and its mean per run
    curves = [line for line in lines if len(line.get_xdata()) == 12]
    means = [line for line in lines if line not in curves]
    assert len(curves) == 2 and len(means) == 2
    np.testing.assert_allclose(curves[0].get_xdata(), np.arange(1, 13))
    np.testing.assert_allclose(curves[0].get_ydata(), a["frames"][4]["val"], atol=1e-4)
    np.testing.assert_allclose(curves[1].get_ydata(), (b["frames"][4]["s0"] + b["frames"][4]["s1"]) / 2, atol=1e-4)
    for curve, mean, expected in zip(curves, means, (22.0, 23.5)):
        assert mean.get_ydata()[0] == pytest.approx(expected, abs=1e-3)
        assert mean.get_linestyle() == "--" and mean.get_color() == curve.get_color()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["a, epoch 5 (mean 22.00 dB)", "b, epoch 5 (mean 23.50 dB)"]
    # the last validated epoch, and a given epoch number
    last = plots.figure_rollout(runs, "last").axes[0].get_lines()[0]
    np.testing.assert_allclose(last.get_ydata(), a["frames"][5]["val"], atol=1e-4)
    second = plots.figure_rollout(runs, 2).axes[0].get_lines()[0]
    np.testing.assert_allclose(second.get_ydata(), a["frames"][1]["val"], atol=1e-4)


def test_plot_psnr_per_frame_keeps_its_signature(tmp_path):
    out = plots.plot_psnr_per_frame({"val": np.linspace(25, 20, 30)}, tmp_path / "p.png", title="t")
    _check_png(out)


def test_val_psnr_per_epoch_marks_the_best_epoch(make_run):
    a = make_run("a", _cfg(), val_every=2)
    b = make_run("b", _cfg(), offset=0.5)
    fig = plots.figure_val_psnr(plots.load_runs([a["path"], b["path"]]))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epoch" and "PSNR" in ax.get_ylabel() and "(dB)" in ax.get_ylabel()
    lines = _by_label(ax)
    assert len(lines) == 4  # a curve and a best-epoch star per run
    np.testing.assert_allclose(lines["a"].get_xdata(), [2, 4, 6])  # only the validated epochs
    np.testing.assert_allclose(lines["a"].get_ydata(), [21.0, 21.5, 21.0])
    np.testing.assert_allclose(lines["b"].get_ydata(), [20.5 + s for s in plots_shape(6)])
    star_b = lines["b best: 22.50 dB @ epoch 5"]
    assert list(star_b.get_xdata()) == [5] and list(star_b.get_ydata()) == [22.5]
    assert "a best: 21.50 dB @ epoch 4" in lines


def plots_shape(n):
    return [0.0, 1.0, 2.0, 1.5, 2.0, 1.0][:n]


@pytest.mark.slow
def test_plot_command_writes_every_plot(make_run, tmp_path, capsys):
    a = make_run("mono", _cfg(kl_anneal_type="Monotonic"))
    b = make_run("none", _cfg(kl_anneal_type="None", kl_anneal_per="step"), offset=1)
    assert cli.main(["plot", str(a["path"]), str(b["path"]), "--out", str(tmp_path / "plots")]) == 0
    names = ["val_psnr_per_epoch.png", "psnr_per_frame.png", "ssim_per_frame.png", "losses_loss.png",
             "losses_mse.png", "losses_kl.png", "schedules_mono.png", "schedules_none.png"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(names)
    for name in names:
        _check_png(tmp_path / "plots" / name)
    assert "8 plot(s) written" in capsys.readouterr().out
    # one run: RUN/plots by default
    assert cli.main(["plot", str(a["path"])]) == 0
    assert (a["path"] / "plots" / "schedules_mono.png").exists()


def test_plot_command_errors_cleanly(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["plot", str(tmp_path / "empty")]) == 2
    assert "not a posecast run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_plots_of_a_trained_run(analysis_run, tmp_path):
    made = plots.plot_runs([analysis_run], tmp_path / "p")
    assert {"val_psnr", "psnr_per_frame", "loss", "mse", "kl", "schedules/tiny-run"} <= set(made)
    run = plots.load_run(analysis_run)
    fig = plots.figure_schedules(run)
    tl = _by_label(_axis(fig, "teacher-forcing ratio"))
    np.testing.assert_allclose(tl["teacher-forcing ratio (schedule)"].get_ydata(), [1.0, 0.9])  # the tiny preset
    np.testing.assert_allclose(_by_label(_axis(fig, "KL weight"))["β per epoch"].get_ydata(), [0.0, 0.5])
    curve = plots.figure_rollout([run]).axes[0].get_lines()[0]
    assert len(curve.get_ydata()) == 7  # 8 validation frames: frames 1..7 predicted
    assert np.mean(curve.get_ydata()) == pytest.approx(run.row(run.best_epoch)["val_psnr"], abs=1e-3)


def test_the_loss_label_names_the_reconstruction_term_trained_on() -> None:
    from posecast.analysis.plots import _recon_label
    from posecast.config import ScheduleConfig

    assert _recon_label(ScheduleConfig()) == "MSE"
    assert _recon_label(ScheduleConfig(recon="l1")) == "L1"
    assert _recon_label(ScheduleConfig(recon="l1", recon_until=0.0)) == "MSE"
    assert _recon_label(ScheduleConfig(recon="l1", recon_until=0.5)) == "L1, then MSE after 0.5 of the epochs"
