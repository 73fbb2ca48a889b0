"""The model's objective: reconstruction and KL terms with the reductions offered (see the README)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .modules import Gaussian


@dataclass
class LossOutput:
    """The objective of one batch of clips: sums over the predicted steps."""

    loss: torch.Tensor  # [] MSE + beta * KL (MSE alone when beta is 0)
    mse: torch.Tensor  # [] reconstruction term
    kl: torch.Tensor  # [] KL term, unweighted
    pred: torch.Tensor  # [B, T-1, 3, H, W] the predicted frames


def kl_divergence(q: Gaussian, p: Gaussian | None = None, *, reduction: str = "lab") -> torch.Tensor:
    """KL(q || p) per time step, [S]. q, p: mu/logvar [B, S, N, H, W]; p None means N(0, I).

    lab: summed over latent elements and divided by the batch size (the lab's kl_criterion);
    mean: averaged over every latent element.
    """
    if p is None:  # 0.5 (mu^2 + e^lv - 1 - lv) with expm1: no cancellation, so no rounding below 0
        kl = 0.5 * (q.mu.pow(2) + (torch.expm1(q.logvar) - q.logvar).clamp_min(0))
    else:
        kl = (0.5 * (p.logvar - q.logvar + (q.logvar.exp() + (q.mu - p.mu).pow(2)) / p.logvar.exp() - 1)).clamp_min(0)
    B = kl.shape[0]
    if reduction == "lab":
        return kl.sum(dim=(0, 2, 3, 4)) / B
    if reduction == "mean":
        return kl.mean(dim=(0, 2, 3, 4))
    raise ValueError(f"unknown KL reduction {reduction!r}")


def reconstruction(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """MSE per time step, [S], averaged over batch and pixels (the lab's nn.MSELoss per step).
    valid: [B, H, W] bool or None: only these pixels of each sample count (the average is over them)."""
    err = F.mse_loss(pred, target, reduction="none")
    if valid is None:
        return err.mean(dim=(0, 2, 3, 4))
    m = valid[:, None, None].to(err.dtype)  # [B, 1, 1, H, W]
    count = m.sum() * err.shape[2]  # the counted pixels (times channels) of one step
    return (err * m).sum(dim=(0, 2, 3, 4)) / count.clamp_min(1)


def elbo_loss(pred: torch.Tensor, target: torch.Tensor, posterior: Gaussian, prior: Gaussian | None,
              beta: float, kl_reduction: str, valid: torch.Tensor | None = None) -> LossOutput:
    """Sum over steps of MSE + beta * KL, computed in fp32 (pred, mu and logvar are upcast, so a
    bf16 forward gives an fp32 loss). pred, target: [B, S, 3, H, W]; valid: see ``reconstruction``."""
    def fp32(g: Gaussian | None) -> Gaussian | None:
        return None if g is None else Gaussian(g.mu.float(), g.logvar.float())

    mse = reconstruction(pred.float(), target, valid)  # [S]
    kl = kl_divergence(fp32(posterior), fp32(prior), reduction=kl_reduction)  # [S]
    # beta = 0 leaves the posterior unconstrained: keep its KL out of the graph, since 0 * inf is NaN
    total = mse.sum() + beta * kl.sum() if beta > 0 else mse.sum()
    return LossOutput(total, mse.sum(), kl.sum(), pred)
