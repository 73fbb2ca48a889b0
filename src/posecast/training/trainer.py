"""The training loop: one step function for training and validation, checkpoints, resume, logs."""
from __future__ import annotations

import csv
import io
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .. import config as cfgmod
from ..config import Config, TrainConfig
from ..data.lab import DataError, VideoSequence, load_split
from ..perf import FastOptions, prepare, to_channels_last
from ..inference.rollout import evaluate_sequences
from ..perf import autocast, to_float
from ..models import PoseCVAE
from .checkpoint import atomic_write_bytes, check_resumable, load_checkpoint, save_checkpoint
from .losses import kl_divergence, reconstruction
from .schedules import kl_beta, teacher_forcing_ratio

METRIC_FIELDS = ["epoch", "step", "lr", "tfr", "beta", "teacher_forced", "train_loss", "train_mse",
                 "train_kl", "val_loss", "val_mse", "val_kl", "val_psnr", "val_ssim", "val_psnr_min",
                 "epoch_time", "elapsed"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


# -- the step function ---------------------------------------------------------------------
def step_loss(model: PoseCVAE, frames: torch.Tensor, poses: torch.Tensor, tf_mask: torch.Tensor | None,
              beta: float, tcfg: TrainConfig, anchor: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Loss of one batch of clips [B, T, 3, H, W]: sum over steps of MSE + beta * KL.
    anchor: optional first frames [B, 3, H, W] (see PoseCVAE.forward)."""
    x = to_float(frames)
    with autocast(tcfg.precision, x.device):
        if anchor is None:
            out = model(x, to_float(poses), tf_mask)
        else:
            out = model(x, to_float(poses), tf_mask, anchor=to_float(anchor))
    mse = reconstruction(out.pred.float(), x[:, 1:])  # [S]
    prior = None if out.prior is None else type(out.prior)(out.prior.mu.float(), out.prior.logvar.float())
    post = type(out.posterior)(out.posterior.mu.float(), out.posterior.logvar.float())
    kl = kl_divergence(post, prior, reduction=tcfg.kl_reduction)  # [S]
    # beta = 0 leaves the posterior unconstrained: keep its KL out of the graph, since 0 * inf is NaN
    total = mse.sum() + beta * kl.sum() if beta > 0 else mse.sum()
    return {"loss": total, "mse": mse.sum(), "kl": kl.sum()}


def clip_starts(length: int, clip_len: int, stride: int | None, fraction: float = 1.0,
                where: str = "the training split") -> list[int]:
    """Start indices of the training clips (non-overlapping by default); the first ``fraction``."""
    if length < clip_len:
        raise DataError(f"{where}: {length} frames are fewer than one training clip of {clip_len} frames "
                        "(lower data.train_vi_len)")
    starts = list(range(0, length - clip_len + 1, stride or clip_len))
    return starts[: max(1, int(len(starts) * fraction))]


def tf_mask_for(mode: str, ratio: float, steps: int, rng: random.Random, epoch_flip: bool) -> torch.Tensor:
    """Which steps of a clip are teacher-forced. ``epoch_flip`` is the coin of this epoch."""
    if mode == "epoch":
        return torch.full((steps,), epoch_flip, dtype=torch.bool)
    if mode == "batch":
        return torch.full((steps,), rng.random() < ratio, dtype=torch.bool)
    return torch.tensor([rng.random() < ratio for _ in range(steps)], dtype=torch.bool)


@dataclass
class Schedules:
    """The schedules of a config, evaluated by epoch (and step within training)."""

    cfg: Config
    steps_per_epoch: int

    def tfr(self, epoch: int) -> float:
        t = self.cfg.train
        return teacher_forcing_ratio(epoch, tfr=t.tfr, tfr_sde=t.tfr_sde, tfr_d_step=t.tfr_d_step,
                                     mode=t.tfr_mode, num_epoch=t.num_epoch)

    def beta(self, epoch: int, step_in_epoch: int = 0) -> float:
        t = self.cfg.train
        if t.kl_anneal_per == "step":
            progress, total = epoch * self.steps_per_epoch + step_in_epoch, t.num_epoch * self.steps_per_epoch
        else:
            progress, total = epoch, t.num_epoch
        return kl_beta(progress, total, kind=t.kl_anneal_type, n_cycle=t.kl_anneal_cycle,
                       ratio=t.kl_anneal_ratio)


@dataclass
class DistInfo:
    """This process's place in a distributed run (torchrun's environment variables)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "DistInfo":
        import os

        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0


def _seed_for(seed: int, epoch: int, salt: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + salt) % (2**63 - 1)


class Trainer:
    """Trains a PoseCVAE on a dataset in the lab layout into ``run_dir``.

    run_dir holds config.yaml, metrics.csv (one row per epoch), val/epoch_NNN.csv (per-frame
    PSNR/SSIM of the validation rollout), checkpoints/{last,best,epoch_NNN}.ckpt, tensorboard/.
    Randomness of epoch e is seeded from (seed, e), so a resumed run repeats exactly.
    """

    def __init__(self, cfg: Config, data_root: str | Path | None, run_dir: str | Path, *, device: str = "cpu",
                 progress: bool = True, log: Callable[[str], None] = print,
                 train_seq: VideoSequence | None = None, val_seqs: list[VideoSequence] | None = None) -> None:
        self.cfg = cfg.validate()
        self.run_dir = Path(run_dir)
        self.dist = DistInfo.from_env()
        if self.dist.world > 1 and device.startswith("cuda") and ":" not in device:
            device = f"cuda:{self.dist.local_rank}"
        self.device = torch.device(device)
        if self.dist.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.progress = progress and self.dist.main
        self.log = log if self.dist.main else (lambda _msg: None)
        size = (cfg.data.frame_H, cfg.data.frame_W)
        self.train_seq = train_seq if train_seq is not None else load_split(data_root, "train", size)
        self.val_seqs = val_seqs if val_seqs is not None else [load_split(data_root, "val", size)]
        if cfg.data.max_val_sequences:
            self.val_seqs = self.val_seqs[: cfg.data.max_val_sequences]
        self.val_len = min(cfg.data.val_vi_len, min(len(s) for s in self.val_seqs))
        root = Path(data_root) if data_root is not None else Path("<given sequences>")
        if self.val_len < 2:
            raise DataError(f"{root / 'val'}: a validation sequence needs at least 2 frames "
                            f"(frame 0 and one to predict), found {self.val_len}")
        clip_starts(len(self.train_seq), cfg.data.train_vi_len, cfg.data.clip_stride,
                    where=str(root / "train"))  # fail before training
        torch.manual_seed(cfg.train.seed)
        self.model = PoseCVAE(cfg.model).to(self.device)
        t = cfg.train
        prepare(self.model, FastOptions(precision=t.precision, channels_last=t.channels_last, threads=t.threads))
        # the module that computes the loss: DDP averages gradients across ranks
        self.net: torch.nn.Module = self.model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        t = cfg.train
        opt_cls = torch.optim.AdamW if t.optim == "AdamW" else torch.optim.Adam
        self.optimizer = opt_cls(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=t.milestones, gamma=t.gamma)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimiser steps done
        self.best_psnr = -math.inf
        self.elapsed = 0.0
        self.schedules = Schedules(cfg, -(-len(self._starts(0)) // cfg.data.batch_size))  # batches per epoch

    # -- data -------------------------------------------------------------------------------
    def _starts(self, epoch: int) -> list[int]:
        d = self.cfg.data
        fast = d.fast_train and epoch < d.fast_train_epoch
        return clip_starts(len(self.train_seq), d.train_vi_len, d.clip_stride,
                           d.fast_partial if fast else d.partial)

    def _batches(self, epoch: int) -> list[torch.Tensor]:
        """Clip start indices per batch for this epoch, shuffled by (seed, epoch)."""
        starts = torch.tensor(self._starts(epoch))
        g = torch.Generator().manual_seed(_seed_for(self.cfg.train.seed, epoch, 1))
        order = starts[torch.randperm(len(starts), generator=g)]
        batches = list(order.split(self.cfg.data.batch_size))
        if self.dist.world > 1:  # every rank takes its share of each global batch
            batches = [b.tensor_split(self.dist.world)[self.dist.rank] for b in batches if len(b) >= self.dist.world]
        return batches

    def _clips(self, seq: VideoSequence, starts: torch.Tensor,
               gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames and poses [B, T, 3, H, W] (uint8) of the clips starting at ``starts``. With
        data.clip_order random / mixed (training only, ``gen`` given), a clip (every clip, or each
        with probability 1/2) is T frames drawn anywhere in the split instead: every step then
        predicts a frame from a previous frame at a random distance."""
        T = self.cfg.data.train_vi_len
        idx = starts[:, None] + torch.arange(T)  # [B, T]
        order = self.cfg.data.clip_order
        if gen is not None and order != "consecutive":
            rand = torch.randint(0, len(seq), idx.shape, generator=gen)
            pick = torch.ones(len(idx), dtype=torch.bool) if order == "random" else torch.rand(len(idx), generator=gen) < 0.5
            idx = torch.where(pick[:, None], rand, idx)
        frames, poses = seq.frames[idx].to(self.device), seq.poses[idx].to(self.device)
        if self.cfg.train.channels_last:
            frames, poses = to_channels_last(frames), to_channels_last(poses)
        return frames, poses

    def _anchors(self, starts: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """data.anchor random: one frame of the training split per clip, at most
        data.anchor_range frames from the clip's start (0: anywhere), as [B, 3, H, W]."""
        n, r = len(self.train_seq), self.cfg.data.anchor_range
        if r <= 0:
            idx = torch.randint(0, n, (len(starts),), generator=gen)
        else:
            lo = (starts - r).clamp(min=0)
            hi = (starts + r).clamp(max=n - 1)
            idx = lo + (torch.rand(len(starts), generator=gen) * (hi - lo + 1)).long().clamp(max=hi - lo)
        a = self.train_seq.frames[idx].to(self.device)
        return to_channels_last(a) if self.cfg.train.channels_last else a

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def state(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch, "step": self.step, "best_psnr": self.best_psnr,
                "elapsed": self.elapsed, "rng": {"torch": torch.get_rng_state()}}

    def load_state(self, state: dict[str, Any]) -> None:
        saved = cfgmod.from_dict(state["config"])
        check_resumable(self.ckpt_dir / "last.ckpt", state, self.cfg.to_dict())
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.cfg.train.lr != saved.train.lr:  # `--resume RUN --lr X`: X replaces the saved rate
            scale = self.cfg.train.lr / saved.train.lr
            for group in self.optimizer.param_groups:
                group["lr"] *= scale
                group["initial_lr"] = self.cfg.train.lr
            self.scheduler.base_lrs = [self.cfg.train.lr for _ in self.scheduler.base_lrs]
            self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_psnr = float(state["best_psnr"])
        self.elapsed = float(state.get("elapsed", 0.0))
        torch.set_rng_state(state["rng"]["torch"])

    def _save(self, val_psnr: float | None) -> None:
        state = self.state()
        if self.epoch % self.cfg.train.per_save == 0:
            save_checkpoint(self.ckpt_dir / f"epoch_{self.epoch:03d}.ckpt", state)
        if val_psnr is not None and val_psnr >= self.best_psnr:
            save_checkpoint(self.ckpt_dir / "best.ckpt", state)
        save_checkpoint(self.ckpt_dir / "last.ckpt", state)  # last: the resume point

    # -- metrics log --------------------------------------------------------------------------
    def _metrics_path(self) -> Path:
        return self.run_dir / "metrics.csv"

    def _truncate_metrics(self) -> None:
        """Keep only the rows of completed (checkpointed) epochs, so a resume never duplicates."""
        path = self._metrics_path()
        rows = []
        if path.exists():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("epoch", "").isdigit() and int(r["epoch"]) < self.epoch]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS)
        w.writeheader()
        w.writerows(rows)
        atomic_write_bytes(path, lambda f: f.write(buf.getvalue().encode()))

    def _append_metrics(self, row: dict[str, Any]) -> None:
        path = self._metrics_path()
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=METRIC_FIELDS).writerow(row)
        with path.open("a", newline="") as f:
            f.write(buf.getvalue())
            f.flush()

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train until num_epoch (or max_time); returns a summary of the last epoch."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume and (self.ckpt_dir / "last.ckpt").exists():
            self.load_state(load_checkpoint(self.ckpt_dir / "last.ckpt"))
            self.log(f"resumed from {self.ckpt_dir / 'last.ckpt'} at epoch {self.epoch}")
        writer = None
        if self.dist.main:
            text = self.cfg.to_yaml()  # atomically: a kill must not leave an empty config.yaml
            atomic_write_bytes(self.run_dir / "config.yaml", lambda f: f.write(text.encode()))
            self._truncate_metrics()
            writer = _tensorboard(self.run_dir / "tensorboard", start_epoch=self.epoch)
        t = self.cfg.train
        summary: dict[str, Any] = {}
        try:
            while self.epoch < t.num_epoch:
                if t.max_time is not None and self.elapsed >= t.max_time:
                    self.log(f"time budget of {t.max_time:.0f} s reached after {self.epoch} epochs")
                    break
                summary = self._epoch(writer)
        finally:
            if writer is not None:
                writer.close()
        return summary

    def _epoch(self, writer: Any) -> dict[str, Any]:
        t, e = self.cfg.train, self.epoch
        t0 = time.perf_counter()
        torch.manual_seed(_seed_for(t.seed, e, 2 + 1000 * self.dist.rank))  # noise differs per rank
        rng = random.Random(_seed_for(t.seed, e, 3))
        # per rank, like the noise: DDP ranks must not draw the same random clips and anchors
        anchor_gen = torch.Generator().manual_seed(_seed_for(t.seed, e, 4 + 1000 * self.dist.rank))
        order_gen = torch.Generator().manual_seed(_seed_for(t.seed, e, 5 + 1000 * self.dist.rank))
        tfr = self.schedules.tfr(e)
        epoch_flip = rng.random() < tfr
        self.model.train()
        sums = {"loss": 0.0, "mse": 0.0, "kl": 0.0}
        n = forced = 0
        batches = self._batches(e)
        bar = tqdm(batches, desc=f"epoch {e + 1}/{t.num_epoch}", leave=False,
                   disable=None if self.progress else True, dynamic_ncols=True)
        for i, starts in enumerate(bar):
            frames, poses = self._clips(self.train_seq, starts, order_gen)
            mask = tf_mask_for(t.tfr_flip, tfr, frames.shape[1] - 1, rng, epoch_flip)
            beta = self.schedules.beta(e, i)
            extra = {} if self.cfg.data.anchor == "clip" else {"anchor": self._anchors(starts, anchor_gen)}
            out = step_loss(self.net, frames, poses, mask, beta, t, **extra)
            loss = out["loss"]
            if not self._all_finite(loss):
                msg = (f"non-finite loss ({loss.item()}) at epoch {e + 1}, batch {i + 1} (step {self.step + 1})")
                if t.skip_nonfinite:
                    self.log(msg + ": batch skipped (train.skip_nonfinite)")
                    self.optimizer.zero_grad(set_to_none=True)
                    continue
                raise NonFiniteLossError(
                    msg + f". The last good checkpoint is kept in {self.ckpt_dir}. Remedies: lower "
                    "train.lr, set train.grad_clip (e.g. 1.0), or train.skip_nonfinite: true.")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.optimizer.step()
            self.step += 1
            for k in sums:
                sums[k] += float(out[k].detach())
            n += 1
            forced += float(mask.float().mean())
            bar.set_postfix(loss=f"{sums['loss'] / n:.4g}", tfr=f"{tfr:.2f}", beta=f"{beta:.2f}")
        bar.close()
        if self.dist.world > 1:  # epoch means over every rank's batches
            packed = torch.tensor([sums["loss"], sums["mse"], sums["kl"], n, forced], dtype=torch.float64)
            dist.all_reduce(packed)
            sums = dict(zip(("loss", "mse", "kl"), packed[:3].tolist()))
            n, forced = int(packed[3]), float(packed[4])
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        row: dict[str, Any] = {"epoch": e, "step": self.step, "lr": lr, "tfr": tfr, "beta": self.schedules.beta(e),
                               "teacher_forced": forced / max(n, 1)}
        row.update({f"train_{k}": v / max(n, 1) for k, v in sums.items()})
        val_psnr = None
        if self.dist.main and ((e + 1) % t.val_every == 0 or e + 1 == t.num_epoch):
            row.update(self.validate(e))  # validation and checkpoints: once, on rank 0
            val_psnr = row["val_psnr"]
        self.epoch += 1
        self.elapsed += time.perf_counter() - t0
        if self.dist.world > 1:  # every rank stops at the same epoch under max_time
            el = torch.tensor([self.elapsed], dtype=torch.float64)
            dist.broadcast(el, 0)
            self.elapsed = float(el)
        row["epoch_time"] = time.perf_counter() - t0
        row["elapsed"] = self.elapsed
        best = val_psnr is not None and val_psnr >= self.best_psnr
        if best:
            self.best_psnr = val_psnr
        if self.dist.main:
            # the row first: a resume drops rows of epochs that were not checkpointed, whereas a
            # row written after the checkpoint would be lost by a kill between the two
            self._append_metrics(row)
            if writer is not None:  # before the checkpoint too: a resume purges what it repeats
                for k, v in row.items():
                    if k not in ("epoch", "step") and v is not None and v == v:
                        writer.add_scalar(k, v, e)
                writer.flush()
            self._save(val_psnr)
        if self.dist.world > 1:
            dist.barrier()
        self.log(_epoch_line(row, t.num_epoch, best))
        return row

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (so all ranks skip or stop together)."""
        ok = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        if self.dist.world > 1:
            ok = ok.cpu()
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item())

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        """Teacher-forced loss on validation clips (the step function) and the prior rollout."""
        t = self.cfg.train
        self.model.eval()
        L = self.cfg.data.train_vi_len
        sums = {"loss": 0.0, "mse": 0.0, "kl": 0.0}
        n = 0
        beta = self.schedules.beta(epoch)
        for seq in self.val_seqs:
            if len(seq) < L:
                continue
            starts = torch.tensor(clip_starts(min(len(seq), self.val_len), L, None))
            for chunk in starts.split(max(self.cfg.data.batch_size, 8)):
                frames, poses = self._clips(seq, chunk)
                out = step_loss(self.model, frames, poses, None, beta, t)
                for k in sums:
                    sums[k] += float(out[k]) * len(chunk)
                n += len(chunk)
        ev = evaluate_sequences(self.model, self.val_seqs, length=self.val_len, z_mode=t.z_infer,
                                seed=t.seed, precision=t.precision)
        self._write_val_frames(epoch, ev)
        self.model.train()
        res = {f"val_{k}": v / max(n, 1) for k, v in sums.items()}
        res.update(val_psnr=ev.mean_psnr, val_ssim=ev.mean_ssim, val_psnr_min=ev.min_psnr)
        return res

    def _write_val_frames(self, epoch: int, ev: Any) -> None:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["sequence", "frame", "psnr", "ssim"])
        for b, name in enumerate(ev.names):
            for j in range(ev.psnr.shape[-1]):
                w.writerow([name, j + 1, f"{float(ev.psnr[0, b, j]):.4f}", f"{float(ev.ssim[0, b, j]):.5f}"])
        atomic_write_bytes(self.run_dir / "val" / f"epoch_{epoch:03d}.csv", lambda f: f.write(buf.getvalue().encode()))


def _epoch_line(row: dict[str, Any], num_epoch: int, best: bool) -> str:
    s = (f"epoch {row['epoch'] + 1}/{num_epoch}  loss {row['train_loss']:.4g} (mse {row['train_mse']:.4g}, "
         f"kl {row['train_kl']:.4g})  tfr {row['tfr']:.2f}  beta {row['beta']:.2f}")
    if "val_psnr" in row:
        s += f"  val PSNR {row['val_psnr']:.2f} dB (min {row['val_psnr_min']:.2f})  SSIM {row['val_ssim']:.3f}"
    return s + ("  *best*" if best else "") + f"  [{row['epoch_time']:.1f} s]"


def _tensorboard(path: Path, start_epoch: int = 0) -> Any:
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
