"""A training budget in minutes turned into an epoch count, measured on this machine.

`posecast train --minutes M` (or a recipe's ``optim.minutes``, and ``benchmarks/quality.py --minutes M``)
time a few optimiser steps
and one validation on a throwaway copy of the run, then set ``optim.num_epoch`` to the most epochs
whose steps and validations fit M minutes. The learning-rate cosine and the schedules are laid
over that count from the first step, and the count is what the run's config.yaml records: a run
with ``--num_epoch N`` repeats the weights (at the same thread count), whatever the machine.

A few steps can mistime an epoch (a probe measured 10 % too fast once, and the hour ran 66 minutes),
so :class:`Replan` times the run's whole first epoch and its checkpoint and lays the schedules over
the count that fits instead. Epoch 0 trains alike under any count (the cosine's first epoch is
at optim.lr; the re-plan is skipped where a schedule's epoch 0 depends on the count), so the
guarantee above holds for the re-planned count.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import config as cfgmod
from ..config import Config
from ..data.lab import VideoSequence
from ..io.checkpoint import save_checkpoint
from .schedules import Schedules
from .step import restart_cosine
from .trainer import Trainer

WARMUP_STEPS = 2  # the first steps create the kernels (oneDNN primitives): not timed


@dataclass
class Plan:
    """What was measured, and the epoch count it gives."""

    minutes: float
    epochs: int
    step_seconds: float
    steps_per_epoch: int
    val_seconds: float  # one validation (teacher-forced clips and the rollout)
    train_seq: VideoSequence  # the data the probe loaded, for the run to reuse
    val_seqs: list[VideoSequence]

    @property
    def epoch_seconds(self) -> float:
        return self.step_seconds * self.steps_per_epoch

    def describe(self) -> str:
        return (f"budget {self.minutes:g} min: {self.step_seconds:.3f} s per step x {self.steps_per_epoch} steps = "
                f"{self.epoch_seconds:.1f} s per epoch, {self.val_seconds:.1f} s per validation (measured) -> "
                f"{self.epochs} epochs (optim.num_epoch)")


def validations(epochs: int, val_every: int) -> int:
    """How many validations a run of ``epochs`` epochs makes (every val_every epochs, and the last)."""
    return epochs // val_every + (1 if epochs % val_every else 0)


def epochs_within(seconds: float, epoch_seconds: float, val_seconds: float, val_every: int) -> int:
    """The most epochs (at least 1) whose steps and validations take at most ``seconds``."""
    n = max(1, int(seconds // max(epoch_seconds, 1e-9)))
    while n > 1 and n * epoch_seconds + validations(n, val_every) * val_seconds > seconds:
        n -= 1
    return n


def plan_epochs(cfg: Config, data_root: str | Path | None, minutes: float, *, device: str = "cpu",
                steps: int = 8, train_seq: VideoSequence | None = None,
                val_seqs: list[VideoSequence] | None = None) -> tuple[Config, Plan]:
    """``cfg`` with optim.num_epoch set to what fits ``minutes`` of training here, and the plan."""
    if minutes <= 0:
        raise cfgmod.ConfigError(f"--minutes: a training budget > 0, got {minutes:g}")
    with tempfile.TemporaryDirectory(prefix="posecast-budget-") as tmp:
        probe = Trainer(cfg, data_root, tmp, device=device, progress=False, log=lambda _msg: None,
                        train_seq=train_seq, val_seqs=val_seqs)
        probe.train_epoch(0, limit=WARMUP_STEPS)
        t0 = time.perf_counter()
        probe.train_epoch(0, limit=steps)
        step_s = (time.perf_counter() - t0) / min(steps, probe.sampler.num_batches(0))
        t0 = time.perf_counter()
        probe.validate(0)
        val_s = time.perf_counter() - t0
    d = cfg.data
    per_epoch = probe.sampler.num_batches(d.fast_train_epoch if d.fast_train else 0)  # the steady epochs
    epochs = epochs_within(minutes * 60, step_s * per_epoch, val_s, cfg.runtime.val_every)
    try:
        planned = cfgmod.override(cfg, num_epoch=epochs, minutes=None).validate()  # the count, not the budget
    except cfgmod.ConfigError as exc:  # e.g. a schedule that needs more epochs than the budget holds
        raise cfgmod.ConfigError(f"--minutes {minutes:g} holds {epochs} epoch(s) here: {exc}") from None
    return planned, Plan(minutes, epochs, step_s, per_epoch, val_s, probe.train_seq, probe.val_seqs)


def first_epoch_alike(cfg: Config, epochs: int, batches: Callable[[int], int]) -> bool:
    """Whether epoch 0 trains the same under optim.num_epoch ``epochs`` as under cfg's count (epoch e
    has ``batches(e)`` optimiser steps): its teacher forcing, reconstruction term and KL weight at every
    step (the learning rate of epoch 0 is optim.lr under any count)."""
    def epoch0(c: Config) -> tuple:
        s = Schedules(c, [batches(e) for e in range(c.optim.num_epoch)])
        return s.tfr(0), s.recon(0), tuple(s.beta(0, i) for i in range(batches(0)))

    return epoch0(cfg) == epoch0(cfgmod.override(cfg, num_epoch=epochs))


def set_epochs(trainer: Trainer, epochs: int) -> None:
    """Lay a run's schedules over ``epochs`` after its first epoch, as a run started with
    optim.num_epoch = ``epochs`` has them then: the config (and config.yaml), the schedules and the
    cosine (rebuilt from optim.lr and stepped once per epoch done)."""
    cfg = cfgmod.override(trainer.cfg, num_epoch=epochs).validate()
    trainer.cfg = cfg
    trainer.schedules = Schedules(cfg, [trainer.sampler.num_batches(e) for e in range(epochs)])
    if cfg.optim.lr_schedule == "cosine":  # a multistep schedule does not depend on the count
        trainer.scheduler = restart_cosine(trainer.optimizer, cfg.optim, trainer.epoch)
    if trainer.dist.main:  # the checkpoints first: a resume at epoch 1 restarts the cosine of config.yaml's count
        trainer.run.save(trainer.state(), per_save=cfg.runtime.per_save, best=False)
        trainer.run.write_config(cfg)


class Replan:
    """``Trainer.fit``'s ``after_epoch`` for a budgeted run: after the first epoch, the epoch count
    that fits ``plan.minutes`` when each step costs what the first epoch's did and each epoch its
    checkpoints, set with :func:`set_epochs`; ``note`` says what it did."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.note: str | None = None
        self.epochs = plan.epochs

    def __call__(self, trainer: Trainer, row: dict) -> None:
        if trainer.epoch != 1 or self.note is not None:
            return
        p, cfg, planned = self.plan, trainer.cfg, trainer.cfg.optim.num_epoch
        t0 = time.perf_counter()  # what each epoch's checkpoints cost (last.ckpt, epoch_NNN every per_save)
        trainer.run.save(trainer.state(), per_save=cfg.runtime.per_save, best=False)
        save_s = time.perf_counter() - t0
        validated = "val_psnr" in row  # epoch 0 validated (a count of 1, or val_every 1)
        step_s = (row["epoch_time"] - (p.val_seconds if validated else 0.0)) / trainer.sampler.num_batches(0)
        epoch_s = step_s * p.steps_per_epoch + save_s  # a steady epoch (data.fast_train shortens the first ones)
        # one epoch more than done at least, unless epoch 0 validated: the last epoch validates
        fits = epochs_within(p.minutes * 60, epoch_s, p.val_seconds, cfg.runtime.val_every)
        epochs = max(fits, trainer.epoch if validated else trainer.epoch + 1)
        self.note = f"budget: the first epoch took {step_s:.3f} s a step (the probe: {p.step_seconds:.3f} s)"
        if epochs == planned:
            self.note += f": {planned} epochs kept"
        elif not first_epoch_alike(cfg, epochs, trainer.sampler.num_batches):
            self.note += f": {planned} epochs kept (a schedule's epoch 0 depends on the count)"
        else:
            try:
                set_epochs(trainer, epochs)
            except cfgmod.ConfigError as exc:  # e.g. a schedule that needs more epochs than the budget holds
                self.note += f": {planned} epochs kept ({exc})"
            else:
                self.epochs = epochs
                self.note += f": {epochs} epochs instead of {planned} (optim.num_epoch re-planned)"
        trainer.log(self.note)
