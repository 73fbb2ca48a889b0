"""A run folder, the on-disk contract of training, and the one module that names its files
(written by :class:`posecast.training.trainer.Trainer`; read by :mod:`posecast.analysis.plots`,
the report, studies, ``posecast train --resume`` and the benchmarks through :class:`Run`):

    config.yaml                     the resolved config
    data_path.txt                   the dataset the run trains on (absolute path)
    metrics.csv                     one row per epoch, columns METRIC_FIELDS
    val/epoch_NNN.csv               per-frame PSNR/SSIM of the validation rollout of epoch NNN
    checkpoints/last.ckpt           the resume point; best.ckpt (best val PSNR), epoch_NNN.ckpt
    tensorboard/                    the metrics again, at step = epoch

Every file is written atomically but metrics.csv, to which a row is appended; a resume drops the
rows of epochs that were not checkpointed, so a kill at any point leaves a consistent folder.
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

from .. import config as cfgmod
from ..config import Config
from ..data.lab import DataError
from ..io.atomic import atomic_write_text
from ..io.checkpoint import FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from ..rollout import FIRST_SAMPLE, SequenceEval, write_frame_csv

# THE metrics schema: the columns of metrics.csv, in order
METRIC_FIELDS = ["epoch", "step", "lr", "tfr", "beta", "teacher_forced", "train_loss", "train_mse",
                 "train_kl", "val_loss", "val_mse", "val_kl", "val_psnr", "val_ssim", "val_psnr_min",
                 "epoch_time", "elapsed"]


def _csv_text(rows: list[dict[str, Any]], header: bool) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS)
    if header:
        w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


class Run:
    """The files of one training run in ``path`` (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.writer: Any = None  # TensorBoard's SummaryWriter while open
        # -- the layout: every name of the folder is spelled here ------------------------------
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / "metrics.csv"
        self.data_file = self.path / "data_path.txt"  # where record_data keeps the dataset's path
        self.ckpt_dir = self.path / "checkpoints"
        self.last_ckpt = self.ckpt_dir / "last.ckpt"  # the resume point: the last completed epoch
        # the (last) epoch with the highest validation PSNR; absent until a validation ran
        self.best_ckpt = self.ckpt_dir / "best.ckpt"

    def epoch_ckpt(self, epoch: int) -> Path:
        """The checkpoint kept after epoch ``epoch`` (1-based: epochs completed), every ``per_save``."""
        return self.ckpt_dir / f"epoch_{epoch:03d}.ckpt"

    def epoch_ckpts(self) -> list[Path]:
        """The epoch_NNN checkpoints there are, oldest first."""
        return sorted(self.ckpt_dir.glob("epoch_*.ckpt"))

    def val_frames_path(self, epoch: int) -> Path:
        """val/epoch_NNN.csv of the validation rollout after epoch ``epoch`` (0-based)."""
        return self.path / "val" / f"epoch_{epoch:03d}.csv"

    # -- reading ----------------------------------------------------------------------------
    def data_path(self) -> str | None:
        """The dataset the run was trained on, when recorded (:meth:`record_data`)."""
        saved = self.data_file
        text = saved.read_bytes().decode().strip() if saved.is_file() else ""
        return text or None

    def read_log(self) -> tuple[Config, list[dict[str, str]]]:
        """config.yaml and the rows of metrics.csv (DataError when the folder holds no run)."""
        if not self.path.is_dir():
            raise DataError(f"run folder not found: {self.path}")
        if not self.metrics_path.exists():
            raise DataError(f"{self.path} is not a posecast run folder (no metrics.csv; train with `posecast train`)")
        if not self.config_path.exists():
            raise DataError(f"{self.path} is not a posecast run folder (no config.yaml)")
        return cfgmod.load(self.config_path), self._metric_rows()

    def _metric_rows(self) -> list[dict[str, str]]:
        """The rows of metrics.csv that hold an epoch number (none without the file)."""
        if not self.metrics_path.exists():
            return []
        with self.metrics_path.open(newline="") as f:
            return [r for r in csv.DictReader(f) if (r.get("epoch") or "").strip().isdigit()]

    def read_val_frames(self, epoch: int) -> list[dict[str, str]] | None:
        """The rows of val/epoch_NNN.csv (sequence, frame, psnr, ssim), None when not logged."""
        path = self.val_frames_path(epoch)
        if not path.exists():
            return None
        with path.open(newline="") as f:
            return list(csv.DictReader(f))

    def resume_state(self, cfg: Config) -> dict[str, Any] | None:
        """last.ckpt's state when there is one, checked against the config that resumes it."""
        if not self.last_ckpt.exists():
            return None
        state = load_checkpoint(self.last_ckpt)
        check_resumable(self.last_ckpt, state, cfg.to_dict())
        return state

    def open(self, cfg: Config, epoch: int) -> None:
        """Start (or resume at ``epoch``) writing: config.yaml, metrics.csv cut to the epochs
        before ``epoch``, a TensorBoard writer that hides what a killed run logged from there on."""
        self.write_config(cfg)
        self.truncate_metrics(epoch)
        self.writer = tensorboard_writer(self.path / "tensorboard", start_epoch=epoch)

    def write_config(self, cfg: Config) -> None:
        """config.yaml: the resolved config (again when the budget re-plans the epoch count)."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, cfg.to_yaml())  # atomically: a kill must not leave an empty config.yaml

    def record_data(self, data: str | Path) -> None:
        """data_path.txt: the dataset's absolute path (read back by :meth:`data_path`), atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.data_file, str(Path(data).resolve()))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def truncate_metrics(self, epoch: int) -> None:
        """Keep only the rows of completed (checkpointed) epochs, so a resume never duplicates."""
        rows = [r for r in self._metric_rows() if int(r["epoch"]) < epoch]
        atomic_write_text(self.metrics_path, _csv_text(rows, header=True))

    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.metrics_path.open("a", newline="") as f:
            f.write(_csv_text([row], header=False))
            f.flush()

    def log_epoch(self, row: dict[str, Any]) -> None:
        """An epoch's metrics row, to metrics.csv then TensorBoard. Call it before the epoch's
        checkpoint: a resume drops rows (and purges events) of epochs it trains again, whereas
        a row written after the checkpoint would be lost by a kill between the two."""
        self.append_metrics(row)
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("epoch", "step") and v is not None and v == v:
                    self.writer.add_scalar(k, v, row["epoch"])
            self.writer.flush()

    def write_val_frames(self, epoch: int, ev: SequenceEval) -> None:
        """val/epoch_NNN.csv: PSNR and SSIM per sequence and frame of an evaluation (first sample)."""
        write_frame_csv(self.val_frames_path(epoch), ev, FIRST_SAMPLE)

    def save(self, state: dict[str, Any], *, per_save: int, best: bool) -> None:
        """The checkpoints of the epoch ``state["epoch"]`` completed: epoch_NNN every ``per_save``
        epochs, best when ``best``, and last (the resume point) always, last."""
        epoch = state["epoch"]
        if epoch % per_save == 0:
            save_checkpoint(self.epoch_ckpt(epoch), state)
        if best:
            save_checkpoint(self.best_ckpt, state)
        save_checkpoint(self.last_ckpt, state)


def describe_config_diff(diff: dict[str, tuple[Any, Any]]) -> list[str]:
    """``section.field: <in the checkpoint> in the checkpoint, <here> here`` for each difference of
    :func:`posecast.config.config_diff` (checkpoint first), sorted by name."""
    return [f"{key}: {saved!r} in the checkpoint, {here!r} here" for key, (saved, here) in sorted(diff.items())]


def check_resumable(path: str | Path, state: dict[str, Any], config: dict[str, Any]) -> None:
    """Raise CheckpointError unless ``state`` (a posecast checkpoint) can resume a run of ``config``.

    The message lists what differs (``model.F_dim: 128 in the checkpoint, 8 here``).
    """
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: the lab's checkpoints hold no optimiser or schedule state that "
                              "posecast can resume; use it with `posecast evaluate` or `predict`")
    missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "step", "config") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: cannot resume from this checkpoint: it lacks {missing}")
    try:  # through the dataclasses, so that fields added since the checkpoint take their defaults
        saved = cfgmod.from_dict(state["config"]).to_dict()
    except (cfgmod.ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: the config saved in the checkpoint cannot be read: {exc}") from None
    diffs = describe_config_diff(cfgmod.config_diff(saved, config, sections=("model",), missing="<missing>"))
    if diffs:
        preset = state["config"].get("preset")
        raise CheckpointError(f"{path}: the checkpoint's model (preset {preset!r}) differs from this run's "
                              f"config (preset {config.get('preset')!r}): " + "; ".join(diffs))



def tensorboard_writer(path: Path, start_epoch: int = 0) -> Any:
    """A SummaryWriter (None without tensorboard). Scalars are logged per epoch, at step = epoch.

    When the folder already holds event files (a resumed run, or a run restarted in its folder
    after a kill before its first checkpoint), the writer purges from ``start_epoch`` on:
    TensorBoard then hides what the interrupted run logged for the epochs that are trained again."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: the CSV log is enough
        return None
    stamps = _event_file_stamps(path)
    if not stamps:
        return SummaryWriter(str(path))
    _wait_to_sort_last(max(stamps))
    return SummaryWriter(str(path), purge_step=start_epoch)


def _event_file_stamps(path: Path) -> list[int]:
    """The creation seconds in the names of the folder's event files."""
    stamps = []
    for f in path.glob("events.out.tfevents.*"):
        try:
            stamps.append(int(f.name.split(".")[3]))
        except (IndexError, ValueError):
            continue
    return stamps


def _wait_to_sort_last(newest: int, limit: float = 1.1) -> None:
    """Wait (``limit`` seconds at most) until a new event file would sort after one created in
    second ``newest``. TensorBoard reads a run's event files in name order, and names start with
    the creation time in whole seconds, then the process id: a resume within the same second could
    sort first, and the interrupted run's events would then be read after the purge that should hide
    them. A file stamped further ahead (a clock stepped back, a folder from another machine) does
    not hold the run up longer than ``limit``."""
    deadline = time.monotonic() + limit
    while int(time.time()) <= newest and time.monotonic() < deadline:
        time.sleep(0.05)
