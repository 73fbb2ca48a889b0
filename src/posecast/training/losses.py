"""Reconstruction and KL terms with the reductions offered (see docs/model.md)."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..models.modules import Gaussian


def kl_divergence(q: Gaussian, p: Gaussian | None = None, *, reduction: str = "lab") -> torch.Tensor:
    """KL(q || p) per time step, [S]. q, p: mu/logvar [B, S, N, H, W]; p None means N(0, I).

    lab: summed over latent elements and divided by the batch size (the lab's kl_criterion);
    mean: averaged over every latent element.
    """
    if p is None:
        kl = -0.5 * (1 + q.logvar - q.mu.pow(2) - q.logvar.exp())
    else:
        kl = 0.5 * (p.logvar - q.logvar + (q.logvar.exp() + (q.mu - p.mu).pow(2)) / p.logvar.exp() - 1)
    B = kl.shape[0]
    if reduction == "lab":
        return kl.sum(dim=(0, 2, 3, 4)) / B
    if reduction == "mean":
        return kl.mean(dim=(0, 2, 3, 4))
    raise ValueError(f"unknown KL reduction {reduction!r}")


def reconstruction(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE per time step, [S], averaged over batch and pixels (the lab's nn.MSELoss per step)."""
    return F.mse_loss(pred, target, reduction="none").mean(dim=(0, 2, 3, 4))
