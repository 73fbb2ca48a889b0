"""The one step function (training, validation and the benchmarks) and the optimiser it steps."""
from __future__ import annotations

from typing import Callable, Protocol

import torch

from ..config import Config, OptimConfig
from ..data.sampling import Batch
from ..models import LossOutput
from ..perf import autocast, to_float


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""

    def __init__(self, message: str, value: float = float("nan")) -> None:
        super().__init__(message)
        self.value = value  # the loss


class Objective(Protocol):
    """A PoseCVAE, or a wrapper that runs its ``loss`` (DDP: ``distributed.DistInfo.wrap``)."""

    def loss(self, frames: torch.Tensor, poses: torch.Tensor, tf_mask: torch.Tensor | None, beta: float, *,
             kl_reduction: str, anchor: torch.Tensor | None = None,
             valid: torch.Tensor | None = None) -> LossOutput: ...


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


def loss_options(cfg: Config) -> dict[str, str]:
    """loss_step's keyword arguments from a config (runtime.precision, schedule.kl_reduction)."""
    return {"precision": cfg.runtime.precision, "kl_reduction": cfg.schedule.kl_reduction}


def loss_step(model: Objective, batch: Batch, tf_mask: torch.Tensor | None, beta: float, *,
              precision: str, kl_reduction: str) -> LossOutput:
    """The loss of a batch of uint8 clips, the forward under ``precision``'s autocast (runtime.precision;
    no backward); ``kl_reduction``: schedule.kl_reduction. A batch's ``valid`` columns (shift
    augmentation with data.shift_mask) are the only ones the MSE counts."""
    x = to_float(batch.frames)
    anchor = None if batch.anchor is None else to_float(batch.anchor)
    extra = {} if batch.valid is None else {"valid": batch.valid}  # wrappers without it keep working
    if batch.anchor_pose is not None:
        extra["anchor_pose"] = to_float(batch.anchor_pose)
    with autocast(precision, x.device):
        return model.loss(x, to_float(batch.poses), tf_mask, beta, kl_reduction=kl_reduction, anchor=anchor,
                          **extra)


def _is_finite(loss: torch.Tensor) -> bool:
    return bool(torch.isfinite(loss.detach()))


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, grad_clip: float | None) -> None:
    """Backward, clip to ``grad_clip`` (optim.grad_clip; None: no clipping), step (the gradients
    were cleared before the forward)."""
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    optimizer.step()


def train_step(model: Objective, optimizer: torch.optim.Optimizer, batch: Batch, tf_mask: torch.Tensor | None,
               beta: float, *, precision: str, kl_reduction: str, grad_clip: float | None,
               all_finite: Callable[[torch.Tensor], bool] = _is_finite) -> dict[str, float]:
    """One optimiser step on a batch: loss_step, then optimizer_step (their keyword arguments).
    Returns the batch's loss, mse and kl. A loss that is not finite (``all_finite``: on every DDP rank) raises
    NonFiniteLossError before the backward, with the gradients cleared and the weights untouched."""
    out = loss_step(model, batch, tf_mask, beta, precision=precision, kl_reduction=kl_reduction)
    optimizer.zero_grad(set_to_none=True)
    if not all_finite(out.loss):
        raise NonFiniteLossError(f"non-finite loss ({out.loss.item()})", out.loss.item())
    optimizer_step(optimizer, out.loss, grad_clip)
    return {"loss": float(out.loss.detach()), "mse": float(out.mse.detach()), "kl": float(out.kl.detach())}
