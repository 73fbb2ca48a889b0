"""A run folder, the on-disk contract of training (read back by evaluation.plots and report):

    config.yaml                     the resolved config
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

from ..config import Config
from .checkpoint import atomic_write_bytes, check_resumable, load_checkpoint, save_checkpoint

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

    @property
    def ckpt_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_ckpt(self) -> Path:
        return self.ckpt_dir / "last.ckpt"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

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
        self.path.mkdir(parents=True, exist_ok=True)
        text = cfg.to_yaml()  # atomically: a kill must not leave an empty config.yaml
        atomic_write_bytes(self.path / "config.yaml", lambda f: f.write(text.encode()))
        self.truncate_metrics(epoch)
        self.writer = tensorboard_writer(self.path / "tensorboard", start_epoch=epoch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def truncate_metrics(self, epoch: int) -> None:
        """Keep only the rows of completed (checkpointed) epochs, so a resume never duplicates."""
        rows = []
        if self.metrics_path.exists():
            with self.metrics_path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("epoch", "").isdigit() and int(r["epoch"]) < epoch]
        text = _csv_text(rows, header=True)
        atomic_write_bytes(self.metrics_path, lambda f: f.write(text.encode()))

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

    def write_val_frames(self, epoch: int, ev: Any) -> None:
        """val/epoch_NNN.csv: PSNR and SSIM per sequence and frame of an evaluation (first sample)."""
        from ..analysis.frame_csv import FIRST_SAMPLE, write_frame_csv

        write_frame_csv(self.path / "val" / f"epoch_{epoch:03d}.csv", ev, FIRST_SAMPLE)

    def save(self, state: dict[str, Any], *, per_save: int, best: bool) -> None:
        """The checkpoints of the epoch ``state["epoch"]`` completed: epoch_NNN every ``per_save``
        epochs, best when ``best``, and last (the resume point) always, last."""
        epoch = state["epoch"]
        if epoch % per_save == 0:
            save_checkpoint(self.ckpt_dir / f"epoch_{epoch:03d}.ckpt", state)
        if best:
            save_checkpoint(self.ckpt_dir / "best.ckpt", state)
        save_checkpoint(self.last_ckpt, state)


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
