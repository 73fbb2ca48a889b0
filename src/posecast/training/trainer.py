"""The training loop: epochs of train_step over sampled clips, validation, a Run folder."""
from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from .. import config as cfgmod
from ..config import Config, OptimConfig
from ..data.lab import DataError, VideoSequence, load_split
from ..data.sampling import COIN_SALT, NOISE_SALT, ClipSampler, epoch_seed, tf_mask_for, validation_clips
from ..models import Objective, PoseCVAE
from ..perf import FastOptions, prepare
from ..rollout import validation_rollout
from .distributed import DistInfo
from .ema import ema_state, load_ema_state, make_ema
from .run import Run
from .schedules import Schedules
from .step import (NonFiniteLossError, Scheduler, loss_step, make_optimizer, make_scheduler, rebase_lr,
                   restart_cosine, train_step)

__all__ = ["EpochHook", "NonFiniteLossError", "Trainer"]
EpochHook = Callable[["Trainer", dict[str, Any]], None]


class Trainer:
    """Trains a PoseCVAE on a dataset in the lab layout into the Run folder ``run_dir``.

    Randomness of epoch e is seeded from (seed, e), so a resumed run repeats exactly.
    """

    def __init__(self, cfg: Config, data_root: str | Path | None, run_dir: str | Path, *, device: str = "cpu",
                 progress: bool = True, log: Callable[[str], None] = print,
                 train_seq: VideoSequence | None = None, val_seqs: list[VideoSequence] | None = None) -> None:
        self.cfg, r = cfg.validate(), cfg.runtime
        self.run = Run(run_dir)
        self.dist = DistInfo.from_env()
        self.device = self.dist.setup(device)
        self.progress = progress and self.dist.main
        self.log = log if self.dist.main else (lambda _msg: None)
        self.train_seq, self.val_seqs, self.val_len = _load_data(cfg, data_root, train_seq, val_seqs)
        where = str(Path(data_root) / "train") if data_root is not None else "<given sequences>/train"
        self.sampler = ClipSampler.from_config(self.train_seq, cfg.data, r.seed, self.dist.rank, self.dist.world,
                                               where=where, pose_context=cfg.model.pose_context)  # fails before training
        torch.manual_seed(r.seed)
        self.model = PoseCVAE(cfg.model).to(self.device)
        prepare(self.model, FastOptions(precision=r.precision, channels_last=r.channels_last, threads=r.threads))
        self.objective = Objective(self.model, cfg.schedule.kl_reduction, cfg.schedule.recon)  # forward: the loss of a batch
        self.net = self.dist.wrap(self.objective, self.device)  # the same under DDP (gradients averaged)
        self.optimizer = make_optimizer(self.model, cfg.optim)
        self.scheduler = make_scheduler(self.optimizer, cfg.optim)
        self.ema = make_ema(self.model, cfg.optim.ema_decay)  # optim.ema_decay: None when 0
        self.epoch, self.step = 0, 0  # epochs completed, optimiser steps done
        self.best_psnr, self.elapsed = -math.inf, 0.0
        # every epoch's steps: data.fast_train makes the first epochs shorter
        self.schedules = Schedules(cfg, [self.sampler.num_batches(e) for e in range(cfg.optim.num_epoch)])

    # -- checkpoint state -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch, "step": self.step, "best_psnr": self.best_psnr,
                "elapsed": self.elapsed, "rng": {"torch": torch.get_rng_state()},
                **(ema_state(self.ema) if self.ema is not None else {})}

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler = _restore_scheduler(self.optimizer, self.scheduler, state, self.cfg.optim)
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_psnr = float(state["best_psnr"])
        self.elapsed = float(state.get("elapsed", 0.0))
        torch.set_rng_state(state["rng"]["torch"])
        if self.ema is not None:
            load_ema_state(self.ema, state)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, resume: bool = False, after_epoch: EpochHook = lambda _trainer, _row: None) -> dict[str, Any]:
        """Train until num_epoch (or max_time), calling ``after_epoch(self, row)`` after each epoch (its checkpoint
        saved; e.g. the budget's re-plan); returns the metrics row of the last epoch."""
        state = self.run.resume_state(self.cfg) if resume else None
        if state is not None:
            self.load_state(state)
            self.log(f"resumed from {self.run.last_ckpt} at epoch {self.epoch}")
        if self.dist.main:
            self.run.open(self.cfg, self.epoch)
        r, row = self.cfg.runtime, {}
        try:
            while self.epoch < self.cfg.optim.num_epoch:
                if r.max_time is not None and self.elapsed >= r.max_time:
                    self.log(f"time budget of {r.max_time:.0f} s reached after {self.epoch} epochs")
                    break
                row = self._epoch()
                after_epoch(self, row)
        finally:
            self.run.close()
        return row

    def _epoch(self) -> dict[str, Any]:
        """One epoch: train, validate when due (rank 0), log the row, then checkpoint."""
        r, e, num_epoch = self.cfg.runtime, self.epoch, self.cfg.optim.num_epoch
        t0 = time.perf_counter()
        row = self.train_epoch(e)
        self.scheduler.step()
        if self.dist.main and ((e + 1) % r.val_every == 0 or e + 1 == num_epoch):
            row.update(self.validate(e))  # validation and checkpoints: once, on rank 0
        self.epoch += 1
        # rank 0's clock: every rank stops at the same epoch under max_time
        self.elapsed = self.dist.broadcast(self.elapsed + time.perf_counter() - t0)
        row.update(epoch_time=time.perf_counter() - t0, elapsed=self.elapsed)
        best = row.get("val_psnr") is not None and row["val_psnr"] >= self.best_psnr
        if best:
            self.best_psnr = row["val_psnr"]
        if self.dist.main:
            self.run.log_epoch(row)
            self.run.save(self.state(), per_save=r.per_save, best=best)
        self.dist.barrier()
        self.log(_epoch_line(row, num_epoch, best))
        return row

    def train_epoch(self, e: int, limit: int | None = None) -> dict[str, Any]:
        """The optimiser steps of epoch e (its first ``limit`` batches: the budget's timing); the start of its row."""
        r = self.cfg.runtime
        torch.manual_seed(epoch_seed(r.seed, e, NOISE_SALT + 1000 * self.dist.rank))  # noise differs per rank
        rng = random.Random(epoch_seed(r.seed, e, COIN_SALT))  # teacher-forcing coins: the same on every rank
        tfr = self.schedules.tfr(e)
        self.objective.recon = self.schedules.recon(e)  # schedule.recon, the MSE after schedule.recon_until
        epoch_flip = rng.random() < tfr
        self.model.train()
        sums, n, forced = {"loss": 0.0, "mse": 0.0, "kl": 0.0}, 0, 0.0
        bar = tqdm(self.sampler.epoch(e), total=len(self.sampler.batches(e)), desc=f"epoch {e + 1}/{self.cfg.optim.num_epoch}",
                   leave=False, disable=None if self.progress else True, dynamic_ncols=True)
        for i, batch in enumerate(bar):
            if limit is not None and i >= limit:
                break
            batch = batch.to(self.device, r.channels_last)
            mask = tf_mask_for(self.cfg.schedule.tfr_flip, tfr, batch.frames.shape[1] - 1, rng, epoch_flip)
            beta = self.schedules.beta(e, i)
            try:
                out = train_step(self.net, self.optimizer, batch, mask, beta, precision=r.precision,
                                 grad_clip=self.cfg.optim.grad_clip, all_finite=self.dist.all_finite)
            except NonFiniteLossError as exc:
                _nonfinite(self, exc, e, i)
                continue
            self.step += 1
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            sums = {k: v + out[k] for k, v in sums.items()}
            n, forced = n + 1, forced + float(mask.float().mean())
            bar.set_postfix(loss=f"{sums['loss'] / n:.4g}", tfr=f"{tfr:.2f}", beta=f"{beta:.2f}")
        bar.close()
        *totals, n, forced = self.dist.sum([*sums.values(), n, forced])  # epoch means over every rank's batches
        row = {"epoch": e, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"], "tfr": tfr,
               "beta": self.schedules.beta(e), "teacher_forced": forced / max(n, 1)}
        row.update({f"train_{k}": v / max(n, 1) for k, v in zip(sums, totals)})
        return row

    def inference_model(self) -> PoseCVAE:
        """The weights a rollout uses: the moving average with optim.ema_decay and inference.use_ema
        (in eval mode), else the trained model."""
        if self.ema is None or not self.cfg.inference.use_ema:
            return self.model
        return self.ema.module.eval()

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        """Teacher-forced loss on validation clips (the step function) and the prior rollout."""
        self.model.eval()
        res = _validation_loss(self.objective, self.val_seqs, self.val_len, self.schedules.beta(epoch), self.cfg,
                               self.device)
        ev = validation_rollout(self.inference_model(), self.val_seqs, self.cfg, length=self.val_len)
        self.run.write_val_frames(epoch, ev)
        self.model.train()
        res.update(val_psnr=ev.mean_psnr, val_ssim=ev.mean_ssim, val_psnr_min=ev.min_psnr)
        return res


def _nonfinite(trainer: Trainer, exc: NonFiniteLossError, e: int, i: int) -> None:
    """Skip the batch (runtime.skip_nonfinite) or stop, saying where and what to do."""
    msg = f"non-finite loss ({exc.value}) at epoch {e + 1}, batch {i + 1} (step {trainer.step + 1})"
    if trainer.cfg.runtime.skip_nonfinite:
        trainer.log(msg + ": batch skipped (runtime.skip_nonfinite)")
        return
    raise NonFiniteLossError(msg + f". The last good checkpoint is kept in {trainer.run.ckpt_dir}. Remedies: lower "
                             "optim.lr, set optim.grad_clip (e.g. 1.0), or runtime.skip_nonfinite: true.",
                             exc.value) from None


def _restore_scheduler(optimizer: torch.optim.Optimizer, scheduler: Scheduler, state: dict[str, Any],
                       optim: OptimConfig) -> Scheduler:
    """The saved LR scheduler's state on ``scheduler``, under the resumed run's ``optim``: a cosine ends at its
    num_epoch, a new lr replaces the saved one (a new scheduler then); another schedule is a ConfigError."""
    saved_optim = cfgmod.from_dict(state["config"]).optim
    if saved_optim.lr_schedule != optim.lr_schedule:
        raise cfgmod.ConfigError(f"optim.lr_schedule: the run was trained with {saved_optim.lr_schedule}; resume it "
                                 f"with the same schedule (not {optim.lr_schedule})")
    scheduler.load_state_dict(state["scheduler"])
    if optim.lr_schedule == "cosine" and int(state["epoch"]) <= 1:  # epoch 0 ran at the rate of any count: the
        scheduler = restart_cosine(optimizer, optim, int(state["epoch"]))  # cosine of this one (a cut re-plan)
    elif optim.lr_schedule == "cosine":  # `--resume RUN --num_epoch N`: the rest of the curve ends at N
        scheduler.T_max = optim.num_epoch
    if optim.lr != saved_optim.lr:  # `--resume RUN --lr X`: X replaces the saved rate
        scheduler = rebase_lr(optimizer, scheduler, saved_optim.lr, optim.lr)
    return scheduler


def _validation_loss(objective: Objective, seqs: list[VideoSequence], length: int, beta: float, cfg: Config,
                     device: torch.device) -> dict[str, float]:
    """The teacher-forced loss (the step function) over the validation clips: ``val_loss``, ``val_mse``, ``val_kl``,
    means over the clips."""
    r, d = cfg.runtime, cfg.data
    sums, n = {"loss": 0.0, "mse": 0.0, "kl": 0.0}, 0
    for batch in validation_clips(seqs, d.train_vi_len, length, max(d.batch_size, 8), cfg.model.pose_context):
        out = loss_step(objective, batch.to(device, r.channels_last), None, beta, precision=r.precision)
        sums = {k: v + float(getattr(out, k)) * len(batch) for k, v in sums.items()}
        n += len(batch)
    return {f"val_{k}": v / max(n, 1) for k, v in sums.items()}


def _load_data(cfg: Config, root: str | Path | None, train_seq: VideoSequence | None,
               val_seqs: list[VideoSequence] | None) -> tuple[VideoSequence, list[VideoSequence], int]:
    """The training sequence, the validation sequences and the validation length (frames)."""
    data = cfg.data
    size = (data.frame_H, data.frame_W)
    train_seq = train_seq if train_seq is not None else load_split(root, "train", size)
    val_seqs = val_seqs if val_seqs is not None else [load_split(root, "val", size)]
    val_len = min(data.val_vi_len, min(len(s) for s in val_seqs))
    if val_len < 2:
        where = Path(root) if root is not None else Path("<given sequences>")
        raise DataError(f"{where / 'val'}: a validation sequence needs at least 2 frames "
                        f"(frame 0 and one to predict), found {val_len}")
    return train_seq, val_seqs, val_len


def _epoch_line(row: dict[str, Any], num_epoch: int, best: bool) -> str:
    s = (f"epoch {row['epoch'] + 1}/{num_epoch}  loss {row['train_loss']:.4g} (mse {row['train_mse']:.4g}, "
         f"kl {row['train_kl']:.4g})  tfr {row['tfr']:.2f}  beta {row['beta']:.2f}")
    if "val_psnr" in row:
        s += f"  val PSNR {row['val_psnr']:.2f} dB (min {row['val_psnr_min']:.2f})  SSIM {row['val_ssim']:.3f}"
    return s + ("  *best*" if best else "") + f"  [{row['epoch_time']:.1f} s]"
