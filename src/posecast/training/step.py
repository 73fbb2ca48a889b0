"""The one step function (training, validation and the benchmarks) and the optimiser it steps.

The objective is a module (``posecast.models.Objective``, or DDP around it) whose forward returns
the loss of a batch: a step runs it under autocast, then backward, clip and step.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn

from ..config import OptimConfig
from ..data.sampling import Batch
from ..models import LossOutput
from ..perf import autocast


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""

    def __init__(self, message: str, value: float = float("nan")) -> None:
        super().__init__(message)
        self.value = value  # the loss


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """optim.optim (Adam or AdamW, with torch's default weight decay: 0.01 for AdamW) over the model's parameters."""
    cls = torch.optim.AdamW if cfg.optim == "AdamW" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr)


Scheduler = torch.optim.lr_scheduler.LRScheduler


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> Scheduler:
    """optim.lr_schedule, stepped once per epoch: multistep, the rate times optim.gamma at each of
    optim.milestones; cosine, from optim.lr to 0 along half a cosine over optim.num_epoch epochs."""
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.num_epoch, eta_min=0.0)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.gamma)


def restart_cosine(optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs_done: int) -> Scheduler:
    """optim.lr's cosine over optim.num_epoch, rebuilt from the start and stepped once per epoch done: the
    scheduler (and the groups' rates) of a run started with that count, after ``epochs_done`` epochs."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"]
    scheduler = make_scheduler(optimizer, cfg)
    with warnings.catch_warnings():  # stepping ahead on purpose: a resumed optimizer has not stepped yet
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        for _ in range(epochs_done):
            scheduler.step()
    return scheduler


def rebase_lr(optimizer: torch.optim.Optimizer, scheduler: Scheduler, old_lr: float, new_lr: float) -> Scheduler:
    """Make ``new_lr`` the base rate of a loaded optimizer (`--resume RUN --lr X`): the current
    rate scales with it, so milestones already passed (or the part of the cosine already run) keep
    their decay. Returns the scheduler rebuilt on the rescaled optimizer at the same epoch."""
    scale = new_lr / old_lr
    for group in optimizer.param_groups:
        group["lr"] *= scale
        group["initial_lr"] = new_lr
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        # its chained update scales with the current rate (eta_min 0): new base rates suffice
        scheduler.base_lrs = [new_lr for _ in scheduler.base_lrs]
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr reports
        return scheduler
    # a new scheduler takes its base rates from initial_lr and its last rate from the groups;
    # built without milestones, its first step keeps the rate (a milestone 0 would decay it again)
    fresh = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[], gamma=scheduler.gamma)
    fresh.milestones, fresh.last_epoch = scheduler.milestones, scheduler.last_epoch
    return fresh


def loss_step(objective: nn.Module, batch: Batch, tf_mask: torch.Tensor | None, beta: float, *,
              precision: str) -> LossOutput:
    """The objective's loss of a batch, its forward under ``precision``'s autocast (runtime.precision;
    no backward): the step function of training (``train_step``) and validation."""
    with autocast(precision, batch.frames.device):
        return objective(batch, tf_mask, beta)


def _is_finite(loss: torch.Tensor) -> bool:
    return bool(torch.isfinite(loss.detach()))


def train_step(objective: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, tf_mask: torch.Tensor | None,
               beta: float, *, precision: str, grad_clip: float | None,
               all_finite: Callable[[torch.Tensor], bool] = _is_finite) -> dict[str, float]:
    """One optimiser step on a batch; returns its loss, mse and kl. grad_clip: optim.grad_clip
    (None: no clipping). A loss that is not finite (``all_finite``: on every DDP rank) raises
    NonFiniteLossError before the backward, with the gradients cleared and the weights untouched."""
    out = loss_step(objective, batch, tf_mask, beta, precision=precision)  # forward under autocast
    optimizer.zero_grad(set_to_none=True)
    if not all_finite(out.loss):
        raise NonFiniteLossError(f"non-finite loss ({out.loss.item()})", out.loss.item())
    out.loss.backward()  # under DDP: the gradients averaged over the ranks
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(objective.parameters(), grad_clip)
    optimizer.step()
    return {"loss": float(out.loss.detach()), "mse": float(out.mse.detach()), "kl": float(out.kl.detach())}
