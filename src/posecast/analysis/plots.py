"""Plots (matplotlib, Agg) from what runs logged: schedules, losses, PSNR per frame and per epoch.

Everything here reads a run folder written by :class:`posecast.training.trainer.Trainer`
(config.yaml, metrics.csv, val/epoch_NNN.csv) and computes nothing the trainer already logged.
The one value not in the log, the KL weight at every optimiser step when ``kl_anneal_per`` is
``step``, is obtained by evaluating the trainer's own pure schedule.

Every ``figure_*`` function returns a :class:`matplotlib.figure.Figure` (no pyplot state, so
tests can inspect its curves); :func:`save_figure` writes it as PNG and :func:`plot_runs` makes
them all for a set of runs.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..config import Config, ScheduleConfig  # noqa: E402
from ..data.lab import DataError  # noqa: E402
from ..io.atomic import atomic_write_bytes  # noqa: E402
from ..training.run import METRIC_FIELDS, Run  # noqa: E402  (the run folder and the columns of metrics.csv)
from ..training.schedules import Schedules  # noqa: E402

DPI = 120
LOSS_PARTS = {
    "loss": ("Total loss (reconstruction + β·KL)", "loss per clip (sum over predicted frames)"),
    "mse": ("Reconstruction term (MSE)", "MSE per clip (sum over predicted frames)"),
    "kl": ("KL term (unweighted)", "KL per clip (sum over predicted frames)"),
}


# -- the logged run ---------------------------------------------------------------------------
@dataclass
class FrameMetrics:
    """Per-frame PSNR/SSIM of one validation rollout (val/epoch_NNN.csv), per sequence."""

    epoch: int  # 0-based, as in metrics.csv
    frames: dict[str, np.ndarray]  # sequence -> frame indices (1..T-1)
    psnr: dict[str, np.ndarray]  # sequence -> dB per frame
    ssim: dict[str, np.ndarray]

    def mean_curve(self, metric: str = "psnr") -> tuple[np.ndarray, np.ndarray]:
        """(frame indices, metric averaged over sequences) for the frames all sequences share."""
        values = getattr(self, metric)
        n = min(len(v) for v in values.values())
        first = next(iter(self.frames.values()))[:n]
        return first, np.mean([v[:n] for v in values.values()], axis=0)


@dataclass
class RunLog:
    """A run folder's config and per-epoch metrics (NaN where a value was not logged)."""

    path: Path
    name: str
    cfg: Config
    metrics: dict[str, np.ndarray]
    _frames: dict[int, FrameMetrics | None] = field(default_factory=dict, repr=False)

    @property
    def epochs(self) -> np.ndarray:
        """0-based epoch numbers of the logged rows."""
        return self.metrics["epoch"].astype(int)

    def column(self, name: str) -> np.ndarray:
        return self.metrics[name]

    def has(self, name: str) -> bool:
        return bool(np.isfinite(self.metrics[name]).any())

    @property
    def val_epochs(self) -> np.ndarray:
        return self.epochs[np.isfinite(self.metrics["val_psnr"])]

    @property
    def best_epoch(self) -> int | None:
        """The epoch best.ckpt holds: the last epoch reaching the highest validation PSNR
        (the trainer saves best.ckpt on ``>=``)."""
        psnr = self.metrics["val_psnr"]
        ok = np.isfinite(psnr)
        if not ok.any():
            return None
        best = np.nanmax(psnr)
        return int(self.epochs[np.flatnonzero(ok & (psnr == best))[-1]])

    @property
    def final_val_epoch(self) -> int | None:
        v = self.val_epochs
        return int(v[-1]) if len(v) else None

    def row(self, epoch: int) -> dict[str, float]:
        i = int(np.flatnonzero(self.epochs == epoch)[-1])
        return {k: float(v[i]) for k, v in self.metrics.items()}

    def frame_metrics(self, epoch: int | None) -> FrameMetrics | None:
        """Per-frame metrics of an epoch's validation rollout, or None when not logged."""
        if epoch is None:
            return None
        if epoch not in self._frames:
            self._frames[epoch] = _frame_metrics(Run(self.path).read_val_frames(epoch), epoch)
        return self._frames[epoch]

    @property
    def steps_per_epoch(self) -> list[int]:
        """Optimiser steps done in each logged epoch (from the cumulative ``step`` column)."""
        steps = self.metrics["step"]
        out, prev = [], 0.0
        for i, s in enumerate(steps):
            if i == 0 and self.epochs[0] > 0:  # a log that does not start at epoch 0
                prev = s - s / (self.epochs[0] + 1)
            out.append(max(int(round(s - prev)), 1))
            prev = s
        return out

    def beta_per_step(self) -> tuple[np.ndarray, np.ndarray]:
        """KL weight at every optimiser step, by evaluating the trainer's schedule.

        Returns (x, beta) with x in epochs on the 1-based epoch axis of the other plots: step i
        of epoch e (0-based) lies at ``e + 1 + i / steps``, so each logged per-epoch beta (the
        value at the epoch's first step) sits on this curve. The schedule counts each epoch's
        logged steps, as the trainer counts each epoch's batches; epochs not logged yet are taken
        to have as many as the last logged one.
        """
        counts = self.steps_per_epoch
        by_epoch = dict(zip(self.epochs.tolist(), counts))
        per_epoch, known = [], counts[0]
        for e in range(int(self.epochs.max()) + 1):
            known = by_epoch.get(e, known)
            per_epoch.append(known)
        sched = Schedules(self.cfg, per_epoch)
        xs, ys = [], []
        for e, n in zip(self.epochs, counts):
            for i in range(n):
                xs.append(e + 1 + i / n)
                ys.append(sched.beta(int(e), i))
        return np.asarray(xs), np.asarray(ys)


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _metric_arrays(rows: list[dict[str, str]], where: Path) -> dict[str, np.ndarray]:
    if not rows:
        raise DataError(f"{where}: no epoch logged yet")
    return {k: np.asarray([_float(r.get(k)) for r in rows], dtype=float) for k in METRIC_FIELDS}


def _frame_metrics(rows: list[dict[str, str]] | None, epoch: int) -> FrameMetrics | None:
    frames: dict[str, list[float]] = {}
    psnr: dict[str, list[float]] = {}
    ssim: dict[str, list[float]] = {}
    for r in rows or []:
        name = r["sequence"]
        frames.setdefault(name, []).append(_float(r["frame"]))
        psnr.setdefault(name, []).append(_float(r["psnr"]))
        ssim.setdefault(name, []).append(_float(r.get("ssim")))
    if not frames:
        return None
    arr = lambda d: {k: np.asarray(v, dtype=float) for k, v in d.items()}  # noqa: E731
    return FrameMetrics(epoch, {k: v.astype(int) for k, v in arr(frames).items()}, arr(psnr), arr(ssim))


def load_run(path: str | Path, name: str | None = None) -> RunLog:
    """Read a run folder (config.yaml and metrics.csv; val/ CSVs are read when asked for)."""
    run = Run(path)
    cfg, rows = run.read_log()
    return RunLog(run.path, name or run.path.resolve().name, cfg, _metric_arrays(rows, run.metrics_path))


def load_runs(paths: Iterable[str | Path]) -> list[RunLog]:
    """Several runs, each named by its folder (with as many parent folders as needed to be unique)."""
    paths = [Path(p).resolve() for p in paths]
    if len(set(paths)) != len(paths):
        raise DataError("the same run folder is given twice")
    return [load_run(p, n) for p, n in zip(paths, unique_names(paths))]


def unique_names(paths: Sequence[Path]) -> list[str]:
    depth = 1
    while True:
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names) or depth >= max(len(p.parts) for p in paths):
            return names
        depth += 1


# -- figure helpers -----------------------------------------------------------------------------
def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write a figure as PNG (parent folders created)."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")  # "tight": legends outside the axes
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))  # a crash never leaves half a PNG
    return path


def _colors(n: int) -> list:
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return [cycle[i % len(cycle)] for i in range(n)]


def _auto_log(ax, arrays: Iterable[np.ndarray]) -> None:
    """Log scale when the values are positive and span more than two decades."""
    vals = np.concatenate([a[np.isfinite(a)] for a in arrays] or [np.zeros(0)])
    if len(vals) and vals.min() > 0 and vals.max() / vals.min() > 100:
        ax.set_yscale("log")


def _epoch_axis(ax, runs: Sequence[RunLog]) -> None:
    ax.set_xlabel("epoch")
    last = max(int(r.epochs.max()) + 1 for r in runs)
    if last <= 20:
        ax.set_xticks(range(1, last + 1))
    ax.grid(alpha=0.3)


def describe_tfr(cfg: Config) -> str:
    """The teacher-forcing schedule in words, epochs numbered from 1."""
    t = cfg.schedule
    if t.tfr == 0:
        return "no teacher forcing (tfr 0)"
    if t.tfr_mode == "linear":
        return f"tfr {t.tfr:g} until epoch {t.tfr_sde + 1}, then linear decay to 0 at epoch {cfg.optim.num_epoch}"
    if t.tfr_d_step == 0:
        return f"constant tfr {t.tfr:g}"
    return f"step decay: tfr {t.tfr:g}, minus {t.tfr_d_step:g} per epoch from epoch {t.tfr_sde + 1}"


# -- 1. schedules: teacher forcing with the training loss, and the KL weight -----------------------
def _recon_label(s: ScheduleConfig) -> str:
    """The reconstruction term a run trained on: MSE, L1, or L1 then the MSE (schedule.recon_until)."""
    if s.recon == "mse" or s.recon_until <= 0:
        return "MSE"
    return "L1" if s.recon_until >= 1 else f"L1, then MSE after {s.recon_until:g} of the epochs"


def figure_schedules(run: RunLog) -> Figure:
    """Two panels sharing the epoch axis: (top) training loss (left axis) with the teacher-forcing
    ratio and the fraction of steps actually teacher-forced (right axis); (bottom) the KL weight
    beta per epoch, or per optimiser step when the run annealed per step."""
    t = run.cfg.schedule
    x = run.epochs + 1
    fig = Figure(figsize=(12, 6.5))
    ax, axb = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    ax.plot(x, run.column("train_loss"), "o-", color="C0", lw=1.5, ms=3, label=f"training loss ({_recon_label(t)} + β·KL)")
    ax.plot(x, run.column("train_mse"), "s--", color="C0", lw=1, ms=3, alpha=0.7, label="training MSE")
    _auto_log(ax, [run.column("train_loss"), run.column("train_mse")])
    ax.set_ylabel("loss per clip (sum over frames)")
    ax.grid(alpha=0.3)
    tw = ax.twinx()
    tw.step(x, run.column("tfr"), where="mid", color="C2", lw=2, label="teacher-forcing ratio (schedule)")
    tw.plot(x, run.column("teacher_forced"), "D", color="C3", ms=5, alpha=0.8, ls="none",
            label=f"teacher-forced steps (fraction; coin per {t.tfr_flip})")
    tw.set_ylim(-0.05, 1.05)
    tw.set_ylabel("teacher-forcing ratio")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = tw.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(1.1, 1.0), fontsize=8, borderaxespad=0)
    ax.set_title(f"{run.name}: training loss and teacher forcing ({describe_tfr(run.cfg)})")

    per_step = t.kl_anneal_per == "step" and t.kl_anneal_type != "None"
    if per_step:
        xs, beta = run.beta_per_step()
        axb.plot(xs, beta, "-", color="C1", lw=1.5, label="β per optimiser step (schedule)")
        axb.plot(x, run.column("beta"), "o", color="C1", ms=4, mfc="white", ls="none",
                 label="β logged (first step of the epoch)")
    else:
        axb.step(x, run.column("beta"), "o-", where="mid", color="C1", lw=1.5, ms=4, label="β per epoch")
    axb.set_ylim(-0.05, 1.05)
    axb.set_ylabel("KL weight β")
    cyc = f", {t.kl_anneal_cycle} cycle(s)" if t.kl_anneal_type == "Cyclical" else ""
    axb.set_title(f"KL annealing: {t.kl_anneal_type}{cyc}, per {t.kl_anneal_per}", fontsize=10)
    axb.legend(loc="upper left", bbox_to_anchor=(1.1, 1.0), fontsize=8, borderaxespad=0)
    _epoch_axis(axb, [run])
    fig.tight_layout()
    return fig


# -- 2. losses of several runs ----------------------------------------------------------------------
def figure_losses(runs: Sequence[RunLog], part: str = "loss") -> Figure:
    """Training (solid) and validation (dashed) ``part`` (loss, mse or kl) per epoch, one colour per run."""
    if part not in LOSS_PARTS:
        raise ValueError(f"part must be one of {list(LOSS_PARTS)}, got {part!r}")
    title, ylabel = LOSS_PARTS[part]
    fig = Figure(figsize=(9, 4.8))
    ax = fig.subplots()
    arrays = []
    for run, color in zip(runs, _colors(len(runs))):
        x = run.epochs + 1
        tr = run.column(f"train_{part}")
        ax.plot(x, tr, "o-", color=color, lw=1.5, ms=3, label=f"{run.name} train")
        arrays.append(tr)
        va = run.column(f"val_{part}")
        ok = np.isfinite(va)
        if ok.any():
            ax.plot(x[ok], va[ok], "s--", color=color, lw=1.2, ms=3, label=f"{run.name} validation")
            arrays.append(va[ok])
    _auto_log(ax, arrays)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}: training (solid) and validation (dashed)")
    _epoch_axis(ax, runs)
    ax.legend(loc="best", fontsize=8, ncol=2 if len(runs) > 2 else 1)
    fig.tight_layout()
    return fig


# -- 3. PSNR per frame ------------------------------------------------------------------------------
def figure_per_frame(curves: dict[str, np.ndarray], *, metric: str = "PSNR", unit: str = "dB",
                     title: str | None = None, frames: dict[str, np.ndarray] | None = None) -> Figure:
    """One curve per name over the frame index, with its mean as a dashed horizontal line."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.subplots()
    for name, values in curves.items():
        values = np.asarray(values, dtype=float)
        x = np.asarray(frames[name]) if frames and name in frames else np.arange(1, len(values) + 1)
        mean = float(np.nanmean(values))
        shown = f"{mean:.2f} {unit}" if unit else f"{mean:.3f}"
        line, = ax.plot(x, values, lw=1.2, label=f"{name} (mean {shown})")
        ax.axhline(mean, color=line.get_color(), ls="--", lw=1)
    ax.set_xlabel("frame index")
    ax.set_ylabel(f"{metric} ({unit})" if unit else metric)
    ax.set_title(title or f"{metric} per frame of the validation rollout (dashed: mean)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def plot_psnr_per_frame(curves: dict[str, np.ndarray], path: str | Path, *,
                        title: str = "PSNR per frame of the validation rollout") -> Path:
    """One curve per name (PSNR in dB for frames 1..T-1) with its mean as a dashed line."""
    return save_figure(figure_per_frame(curves, title=title), path)


def rollout_curves(runs: Sequence[RunLog], epoch: str | int = "best", metric: str = "psnr"
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    """Per-frame curves (mean over validation sequences) of each run at ``epoch`` ('best',
    'last' or a 1-based epoch number). Runs without that rollout logged are left out."""
    curves, frames, epochs = {}, {}, {}
    for run in runs:
        e = _pick_epoch(run, epoch)
        fm = run.frame_metrics(e)
        if fm is None:
            continue
        frames[run.name], curves[run.name] = fm.mean_curve(metric)
        epochs[run.name] = e
    return curves, frames, epochs


def _pick_epoch(run: RunLog, epoch: str | int) -> int | None:
    if epoch == "best":
        return run.best_epoch
    if epoch == "last":
        return run.final_val_epoch
    return int(epoch) - 1


def figure_rollout(runs: Sequence[RunLog], epoch: str | int = "best", metric: str = "psnr") -> Figure | None:
    """PSNR (or SSIM) per frame of the validation rollout of each run, with its mean."""
    curves, frames, epochs = rollout_curves(runs, epoch, metric)
    if not curves:
        return None
    labelled = {f"{n}, epoch {epochs[n] + 1}": c for n, c in curves.items()}
    frames = {f"{n}, epoch {epochs[n] + 1}": f for n, f in frames.items()}
    which = {"best": "best epoch", "last": "last validated epoch"}.get(str(epoch), f"epoch {epoch}")
    name, unit = ("PSNR", "dB") if metric == "psnr" else ("SSIM", "")
    return figure_per_frame(labelled, metric=name, unit=unit, frames=frames,
                            title=f"{name} per frame of the validation rollout ({which}; dashed: mean)")


# -- 4. validation PSNR per epoch ------------------------------------------------------------------
def figure_val_psnr(runs: Sequence[RunLog]) -> Figure | None:
    """Mean validation PSNR per epoch for each run; a star marks its best epoch."""
    if not any(r.has("val_psnr") for r in runs):
        return None
    fig = Figure(figsize=(9, 4.5))
    ax = fig.subplots()
    for run, color in zip(runs, _colors(len(runs))):
        psnr = run.column("val_psnr")
        ok = np.isfinite(psnr)
        if not ok.any():
            continue
        x = run.epochs + 1
        ax.plot(x[ok], psnr[ok], "o-", color=color, lw=1.5, ms=3, label=run.name)
        b = run.best_epoch
        ax.plot([b + 1], [run.row(b)["val_psnr"]], "*", color=color, ms=14, mec="black", mew=0.6,
                label=f"{run.name} best: {run.row(b)['val_psnr']:.2f} dB @ epoch {b + 1}")
    ax.set_ylabel("mean PSNR over the rollout (dB)")
    ax.set_title("Validation PSNR per epoch (prior rollout; star: best epoch)")
    _epoch_axis(ax, runs)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


# -- all of them ------------------------------------------------------------------------------------
def safe_name(name: str) -> str:
    """A run name (or a heading) as a file name or an HTML id: other characters than letters,
    digits and ``-_.`` become ``_``; ``run`` when nothing is left."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "run"


def plot_runs(runs: Sequence[RunLog | str | Path], out_dir: str | Path, *, epoch: str | int = "best"
              ) -> dict[str, Path]:
    """Write every plot for these runs into out_dir; returns {plot key: PNG path}.

    keys: ``val_psnr``, ``psnr_per_frame``, ``ssim_per_frame``, ``loss``, ``mse``, ``kl`` (all
    runs on one figure) and ``schedules/<run>`` (one figure per run).
    """
    if all(isinstance(r, RunLog) for r in runs):
        logs = list(runs)
    else:
        logs = load_runs(runs)  # type: ignore[arg-type]
    out = Path(out_dir)
    made: dict[str, Path] = {}

    def put(key: str, fig: Figure | None, filename: str) -> None:
        if fig is not None:
            made[key] = save_figure(fig, out / filename)

    put("val_psnr", figure_val_psnr(logs), "val_psnr_per_epoch.png")
    put("psnr_per_frame", figure_rollout(logs, epoch, "psnr"), "psnr_per_frame.png")
    put("ssim_per_frame", figure_rollout(logs, epoch, "ssim"), "ssim_per_frame.png")
    for part in LOSS_PARTS:
        put(part, figure_losses(logs, part), f"losses_{part}.png")
    for run in logs:
        put(f"schedules/{run.name}", figure_schedules(run), f"schedules_{safe_name(run.name)}.png")
    return made
