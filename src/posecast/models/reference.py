"""The model's loss written one time step after another: the specification to read first.

``reference_loss`` is what ``Objective`` (objective.py) computes, in the order the lab report
describes it and the lab template runs it: for each step t of a clip, encode the previous frame
(the ground truth x_{t-1} where teacher-forced, else the previous prediction; step 1 always x_0)
and the current frame x_t, encode pose_t, draw z from the posterior q(z | x_t, pose_t), decode the
frame, and add MSE (or L1) + beta * KL(q || p) of the step. ``PoseCVAE.forward`` gets the same numbers
faster: it encodes all frames and poses of a clip in one batched call and decodes all
teacher-forced steps at once (tests/models/test_reference.py holds the two equal, gradients
included); benchmarks/speed.py times this loop as the lab's way.
"""
from __future__ import annotations

import torch

from ..data.sampling import Batch
from ..perf import to_float
from .cvae import PoseCVAE
from .objective import LossOutput, kl_divergence, reconstruction
from .outputs import pose_change_gate
from .parts import Gaussian
from .pose_context import single_pose_context, stack_pose_context


def _step(g: Gaussian | None) -> Gaussian | None:
    """One step's Gaussian [B, N, h, w] as the [B, 1, N, h, w] the KL takes, in fp32."""
    return None if g is None else Gaussian(g.mu.float()[:, None], g.logvar.float()[:, None])


def reference_loss(model: PoseCVAE, batch: Batch, tf_mask: torch.Tensor | None, beta: float, *,
                   kl_reduction: str = "lab", eps: torch.Tensor | None = None, recon: str = "mse") -> LossOutput:
    """``Objective(model, kl_reduction, recon)(batch, tf_mask, beta, eps)``, one step at a time, every
    module called at every step. batch, tf_mask, eps: as there (tf_mask None: all teacher-forced);
    recon ``l1`` trains on the absolute error of each step instead of its MSE."""
    k = model.cfg.pose_context  # each pose with its neighbours' (models/pose_context.py), as the forward reads them
    x, p = to_float(batch.frames), stack_pose_context(to_float(batch.poses), k)  # [B, T, 3 (2k + 1), H, W]
    T = x.shape[1]
    x0 = x[:, 0] if batch.anchor is None else to_float(batch.anchor)  # what the first-frame options read
    first = model.frame_encoder(x0) if model.cfg.first_frame_cond else None
    if (model.cfg.first_pose_cond or model.cfg.pose_gate) and batch.anchor is not None and batch.anchor_pose is None:
        raise ValueError("model.first_pose_cond and model.pose_gate: an anchor frame needs its pose (anchor_pose)")
    pose0 = p[:, 0] if batch.anchor_pose is None else single_pose_context(to_float(batch.anchor_pose), k)
    first_pose = model.pose_encoder(pose0) if model.cfg.first_pose_cond else None
    forced = [True] * (T - 1) if tf_mask is None else [bool(v) for v in tf_mask.tolist()]
    recs, mses, kls, preds = [], [], [], []
    prev = x[:, 0]
    for t in range(1, T):
        if forced[t - 1] or t == 1:
            prev = x[:, t - 1]
        h_prev = model.frame_encoder(prev) if model.reads_prev else None
        h_t = model.frame_encoder(x[:, t])
        pose_t = model.pose_encoder(p[:, t])
        post = model.posterior_net(h_t, pose_t)
        e = torch.randn_like(post.mu) if eps is None else eps[:, t - 1]
        z = post.mu + e * torch.exp(0.5 * post.logvar)  # the reparameterisation
        gate = pose_change_gate(p[:, t], pose0, model.cfg.pose_gate) if model.cfg.pose_gate else None
        pred = model.decode(prev, h_prev, pose_t, z, first, x0, first_pose, gate)
        recs.append(reconstruction(pred.float()[:, None], x[:, t, None], batch.valid, recon)[0])
        mses.append(reconstruction(pred.detach().float()[:, None], x[:, t, None], batch.valid)[0])
        kls.append(kl_divergence(_step(post), _step(model.prior(h_prev, pose_t)), reduction=kl_reduction)[0])
        preds.append(pred)
        prev = pred
    rec, mse, kl = torch.stack(recs).sum(), torch.stack(mses).sum(), torch.stack(kls).sum()
    total = rec + beta * kl if beta > 0 else rec  # beta 0: the KL stays out of the graph (0 * inf is NaN)
    return LossOutput(total, mse, kl, torch.stack(preds, 1))
