"""An exponential moving average of the weights (``optim.ema_decay``), kept beside the trained ones.

The average is a :class:`torch.optim.swa_utils.AveragedModel` updated after every optimiser step
with the decay ``min(ema_decay, (1 + n) / (10 + n))`` (n: the updates so far), so that early in a
run it follows the weights closely instead of holding on to the random start. It never feeds back
into training: the trained weights, the optimiser and the random streams are the same with or
without it. Checkpoints keep its weights under ``"ema"`` (a state dict of the model) and its update
count under ``"ema_updates"``; inference rolls out with them where ``inference.use_ema``
(posecast.inference.load).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

WARMUP = 10.0  # the decay (1 + n) / (WARMUP + n) caps ema_decay for the first updates


def decay_at(ema_decay: float, n: int) -> float:
    """The decay of update n + 1 (n updates done): ``min(ema_decay, (1 + n) / (10 + n))``."""
    return min(ema_decay, (1.0 + n) / (WARMUP + n))


def _ema_fn(ema_decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], Any], None]:
    """AveragedModel's multi_avg_fn: ema <- decay * ema + (1 - decay) * current, in place."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: Any) -> None:
        if not averaged[0].is_floating_point():  # integer buffers (BatchNorm's count, model.arch lab): copied
            torch._foreach_copy_(averaged, current)
            return
        weight = 1.0 - decay_at(ema_decay, int(num_averaged))
        torch._foreach_lerp_(averaged, current, weight)

    return update


def make_ema(model: nn.Module, ema_decay: float) -> AveragedModel | None:
    """The moving average of ``model`` (a copy, in its memory layout), or None when ema_decay is 0."""
    if ema_decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=_ema_fn(ema_decay), use_buffers=True)


def ema_state(ema: AveragedModel) -> dict[str, Any]:
    """What a checkpoint keeps of the average: the model's state dict and the update count."""
    return {"ema": ema.module.state_dict(), "ema_updates": int(ema.n_averaged)}


def load_ema_state(ema: AveragedModel, state: dict[str, Any]) -> None:
    """Restore :func:`ema_state` (a resumed run); a checkpoint without it restarts the average
    from the loaded weights at the next update."""
    if "ema" not in state:
        ema.n_averaged.zero_()
        return
    ema.module.load_state_dict(state["ema"])
    ema.n_averaged.fill_(int(state["ema_updates"]))
