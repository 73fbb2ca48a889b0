"""Schedules as pure functions of progress: no hidden counters, so resuming and plotting are free."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..config import Config


def _clamp01(x: float) -> float:
    return min(1.0, max(0.0, x))


def teacher_forcing_ratio(epoch: int, *, tfr: float = 1.0, tfr_sde: int = 10, tfr_d_step: float = 0.1,
                          mode: str = "step", num_epoch: int = 70) -> float:
    """The teacher-forcing ratio used during ``epoch`` (0-based).

    step (the lab): the ratio drops by ``tfr_d_step`` after every epoch from ``tfr_sde`` on,
    so epoch ``tfr_sde`` already trains with ``tfr - tfr_d_step``.
    linear (the report): ``tfr`` up to ``tfr_sde``, then linear to 0 at the last epoch.
    """
    if mode == "step":
        return round(_clamp01(tfr - tfr_d_step * max(0, epoch - tfr_sde + 1)), 12)
    if mode == "linear":
        last = num_epoch - 1
        if epoch <= tfr_sde or last <= tfr_sde:
            return _clamp01(tfr if epoch <= tfr_sde else 0.0)
        return round(_clamp01(tfr * (1.0 - (epoch - tfr_sde) / (last - tfr_sde))), 12)
    raise ValueError(f"tfr_mode must be 'step' or 'linear', got {mode!r}")


def kl_beta(progress: float, total: float, *, kind: str = "Cyclical", n_cycle: int = 10,
            ratio: float = 1.0) -> float:
    """KL weight at ``progress`` (epoch or step, 0-based) of ``total``.

    Cyclical: ``n_cycle`` cycles of length total / n_cycle; in each, beta rises linearly from 0
    to 1 over the first ``ratio`` of the cycle, then stays at 1 (the lab's frange_cycle_linear).
    Monotonic: one such rise over the first ``ratio`` of training, then 1 (what the report's
    listing means; its ``for ... else`` bug would make it all ones).
    None: 1 throughout.
    """
    if kind == "None":
        return 1.0
    if kind == "Monotonic":
        n_cycle = 1
    elif kind != "Cyclical":
        raise ValueError(f"kl_anneal_type must be Cyclical, Monotonic or None, got {kind!r}")
    period = total / n_cycle
    # floor with a tolerance, so that 7.000000001 cycles does not wrap the wrong way
    pos = progress - period * math.floor(progress / period + 1e-9)
    return round(_clamp01(pos / (period * ratio)), 12)


@dataclass
class Schedules:
    """The schedules of a config, evaluated by epoch (and step within training).

    ``steps_per_epoch``: the optimiser steps of each epoch, as a sequence (epoch e has
    ``steps_per_epoch[e]``; epochs past its end have its last count), or one count for every
    epoch. Epochs differ where ``data.fast_train`` trains the first epochs on part of the clips.
    """

    cfg: Config
    steps_per_epoch: int | Sequence[int]

    def tfr(self, epoch: int) -> float:
        s = self.cfg.schedule
        return teacher_forcing_ratio(epoch, tfr=s.tfr, tfr_sde=s.tfr_sde, tfr_d_step=s.tfr_d_step,
                                     mode=s.tfr_mode, num_epoch=self.cfg.optim.num_epoch)

    def steps_before(self, epoch: int) -> int:
        """Optimiser steps of the epochs before ``epoch`` (0-based)."""
        n = self.steps_per_epoch
        if isinstance(n, int):
            return epoch * n
        return sum(n[min(e, len(n) - 1)] for e in range(epoch))

    def recon(self, epoch: int) -> str:
        """The reconstruction term of ``epoch``: schedule.recon for the first schedule.recon_until of
        optim.num_epoch, the MSE after it."""
        s = self.cfg.schedule
        # a tolerance, so that 0.14 x 50 = 7.000000000000001 still gives 7 epochs of recon
        return s.recon if epoch + 1e-9 < s.recon_until * self.cfg.optim.num_epoch else "mse"

    def beta(self, epoch: int, step_in_epoch: int = 0) -> float:
        s, num_epoch = self.cfg.schedule, self.cfg.optim.num_epoch
        if s.kl_anneal_per == "step":
            progress, total = self.steps_before(epoch) + step_in_epoch, self.steps_before(num_epoch)
        else:
            progress, total = epoch, num_epoch
        return kl_beta(progress, total, kind=s.kl_anneal_type, n_cycle=s.kl_anneal_cycle,
                       ratio=s.kl_anneal_ratio)
