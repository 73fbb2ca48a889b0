"""A training budget in minutes turned into an epoch count, measured on this machine.

`posecast train --minutes M` (or a recipe's ``optim.minutes``, and ``benchmarks/quality.py --minutes M``)
time a few optimiser steps
and one validation on a throwaway copy of the run, then set ``optim.num_epoch`` to the most epochs
whose steps and validations fit M minutes. The learning-rate cosine and the schedules are laid
over that count from the first step, and the count is what the run's config.yaml records: a run
with ``--num_epoch N`` repeats the weights (at the same thread count), whatever the machine.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import config as cfgmod
from ..config import Config
from ..data.lab import VideoSequence
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

