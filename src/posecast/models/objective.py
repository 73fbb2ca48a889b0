"""The model's objective: ``Objective``, a module whose forward is the loss of a batch of clips,
and its reconstruction and KL terms with the reductions offered (docs/training.md).

    objective = Objective(model, kl_reduction="lab")
    out = objective(batch, tf_mask, beta)     # LossOutput; out.loss.backward()

models/reference.py computes the same loss one time step after another.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..data.sampling import Batch
from ..perf import to_float
from .cvae import PoseCVAE
from .parts import Gaussian


@dataclass
class LossOutput:
    """The objective of one batch of clips: sums over the predicted steps."""

    loss: torch.Tensor  # [] the reconstruction term (MSE, or L1 with recon l1) + beta * KL (that term alone when beta is 0)
    mse: torch.Tensor  # [] the MSE, logged whichever term trains
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


RECON_KINDS = ("mse", "l1")  # schedule.recon: the reconstruction terms offered


def reconstruction(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                   kind: str = "mse") -> torch.Tensor:
    """MSE (kind ``mse``: the lab's nn.MSELoss per step) or mean absolute error (``l1``) per time
    step, [S], averaged over batch and pixels. valid: [B, H, W] bool or None: only these pixels of each
    sample count (the average is over them)."""
    if kind not in RECON_KINDS:
        raise ValueError(f"unknown reconstruction loss {kind!r} (mse or l1)")
    err = F.mse_loss(pred, target, reduction="none") if kind == "mse" else F.l1_loss(pred, target, reduction="none")
    if valid is None:
        return err.mean(dim=(0, 2, 3, 4))
    m = valid[:, None, None].to(err.dtype)  # [B, 1, 1, H, W]
    count = m.sum() * err.shape[2]  # the counted pixels (times channels) of one step
    return (err * m).sum(dim=(0, 2, 3, 4)) / count.clamp_min(1)


def elbo_loss(pred: torch.Tensor, target: torch.Tensor, posterior: Gaussian, prior: Gaussian | None,
              beta: float, kl_reduction: str, valid: torch.Tensor | None = None, recon: str = "mse") -> LossOutput:
    """Sum over steps of MSE (or, with recon ``l1``, the mean absolute error) + beta * KL, computed
    in fp32 (pred, mu and logvar are upcast, so a bf16 forward gives an fp32 loss). The output's mse
    is the MSE whichever term trains. pred, target: [B, S, 3, H, W]; valid: see ``reconstruction``."""
    def fp32(g: Gaussian | None) -> Gaussian | None:
        return None if g is None else Gaussian(g.mu.float(), g.logvar.float())

    rec = reconstruction(pred.float(), target, valid, recon).sum()
    if recon == "mse":
        mse = rec
    else:
        with torch.no_grad():
            mse = reconstruction(pred.float(), target, valid).sum()
    kl = kl_divergence(fp32(posterior), fp32(prior), reduction=kl_reduction)  # [S]
    # beta = 0 leaves the posterior unconstrained: keep its KL out of the graph, since 0 * inf is NaN
    total = rec + beta * kl.sum() if beta > 0 else rec
    return LossOutput(total, mse, kl.sum(), pred)


class Objective(nn.Module):
    """A PoseCVAE's training objective as a module: ``forward`` returns the loss of a batch, so
    DistributedDataParallel wraps it as it is (it synchronises the gradients of what forward ran).

    kl_reduction: schedule.kl_reduction (``lab`` or ``mean``, see ``kl_divergence``); recon:
    schedule.recon (``mse`` or ``l1``, see ``reconstruction``)."""

    def __init__(self, model: PoseCVAE, kl_reduction: str = "lab", recon: str = "mse") -> None:
        super().__init__()
        if recon not in RECON_KINDS:
            raise ValueError(f"unknown reconstruction loss {recon!r} (mse or l1)")
        self.model = model
        self.kl_reduction = kl_reduction
        self.recon = recon

    def forward(self, batch: Batch, tf_mask: torch.Tensor | None, beta: float,
                eps: torch.Tensor | None = None) -> LossOutput:
        """Sum over steps of MSE (or L1) + beta * KL(q || p) of a batch of clips (uint8 or in [0, 1]).

        batch.frames, batch.poses: [B, T, 3, H, W]; batch.anchor: the first frame that
        first_frame_cond / masked_first read (None: x_0) and its pose batch.anchor_pose (read by
        model.first_pose_cond); batch.valid: [B, H, W] bool or None, the pixels the MSE counts
        (``reconstruction``). tf_mask: bool [T-1] or None (see
        ``PoseCVAE.forward``); eps: optional noise [B, T-1, N, h, w]. Under autocast the forward
        may run in bf16; the loss itself is computed in fp32."""
        x = to_float(batch.frames)
        anchor = None if batch.anchor is None else to_float(batch.anchor)
        anchor_pose = None if batch.anchor_pose is None else to_float(batch.anchor_pose)
        out = self.model(x, to_float(batch.poses), tf_mask, eps=eps, anchor=anchor, anchor_pose=anchor_pose)
        return elbo_loss(out.pred, x[:, 1:], out.posterior, out.prior, beta, self.kl_reduction, batch.valid, self.recon)
