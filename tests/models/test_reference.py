"""posecast.models.reference, the loss one time step after another, against the batched Objective
(the Trainer's loss_step): the same loss, predictions and gradients in fp32."""
from __future__ import annotations

import pytest
import torch

from posecast import config as cfgmod
from posecast.data.sampling import Batch
from posecast.models import Objective, PoseCVAE
from posecast.models.reference import reference_loss
from posecast.perf import to_float
from posecast.training.step import loss_step


class _FixedEps(Objective):
    """The Objective with given noise (loss_step calls objective(batch, tf_mask, beta))."""

    def __init__(self, model: PoseCVAE, kl_reduction: str, eps: torch.Tensor, recon: str = "mse") -> None:
        super().__init__(model, kl_reduction, recon)
        self.eps = eps

    def forward(self, batch, tf_mask, beta):
        return super().forward(batch, tf_mask, beta, eps=self.eps)


def _clips(B: int, T: int, H: int = 8, W: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames and poses [B, T, 3, H, W] (random)."""
    g = torch.Generator().manual_seed(0)
    shape = (B, T, 3, H, W)
    return (torch.randint(0, 256, shape, generator=g, dtype=torch.uint8),
            torch.randint(0, 256, shape, generator=g, dtype=torch.uint8))


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# options; and whether the batch has another first frame (and its pose) and counts some pixels only
# (data.shift_mask)
CASES = {"lab-options": ({}, False),
         "other-options": (dict(prior="learned", first_frame_cond=True, output="masked"), False),
         "anchor-valid": (dict(first_frame_cond=True, first_pose_cond=True, output="warped_first"), True),
         "pose-gate": (dict(first_frame_cond=True, first_pose_cond=True, output="warped_first", pose_gate=1), True),
         "pose-context": (dict(arch="unet", levels=2, frame_H=8, frame_W=12, first_frame_cond=True, first_pose_cond=True,
                               output="warped_first", prev_frame_cond=False, pose_context=1), True),
         "l1-anchor-valid": (dict(first_frame_cond=True, first_pose_cond=True, output="warped_first", recon="l1"), True)}


@pytest.mark.parametrize("tf", [True, False], ids=["tf", "no-tf"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.slow
def test_reference_step_equals_posecast_step(tf: bool, case: str) -> None:
    """The lab template's loop and the batched loss_step: the same loss and gradients."""
    options, anchored = CASES[case]
    cfg = cfgmod.override(cfgmod.preset("tiny"), **options)
    torch.manual_seed(0)
    model = PoseCVAE(cfg.model)
    frames, poses = _clips(2, 5)
    eps = torch.randn(2, 4, cfg.model.N_dim, 8, 12, generator=torch.Generator().manual_seed(0))
    batch = Batch(frames, poses)
    if anchored:
        valid = torch.ones(2, 8, 12, dtype=torch.bool)  # [B, H, W]
        valid[0, :, :3] = False
        valid[1, 2, 5] = False
        batch = Batch(frames, poses, anchor=frames[[1, 0], 2], valid=valid, anchor_pose=poses[[1, 0], 2])
    mask = torch.full((4,), tf)
    kl, recon = cfg.schedule.kl_reduction, cfg.schedule.recon

    model.zero_grad(set_to_none=True)
    ref = reference_loss(model, batch, mask, 0.5, kl_reduction=kl, eps=eps, recon=recon)
    ref.loss.backward()
    g_ref = _grads(model)

    model.zero_grad(set_to_none=True)
    out = loss_step(_FixedEps(model, kl, eps, recon), batch, mask, 0.5, precision=cfg.runtime.precision)
    out.loss.backward()
    g_fast = _grads(model)

    with torch.no_grad():
        x0, p0 = (None if v is None else to_float(v) for v in (batch.anchor, batch.anchor_pose))
        pred = model(to_float(frames), to_float(poses), mask, eps=eps, anchor=x0, anchor_pose=p0).pred
    torch.testing.assert_close(pred, ref.pred.detach(), atol=1e-5, rtol=0)
    for k in ("loss", "mse", "kl"):
        torch.testing.assert_close(getattr(out, k).detach(), getattr(ref, k).detach(), atol=1e-5, rtol=1e-5)
    assert g_ref.keys() == g_fast.keys()
    for n in g_ref:
        torch.testing.assert_close(g_fast[n], g_ref[n], atol=1e-5, rtol=1e-4, msg=n)


def test_reference_follows_a_mixed_teacher_forcing_mask() -> None:
    """A mask that forces some steps and feeds back others: the reference and the batched forward
    (teacher-forced steps in one call, the others one after another) predict the same frames."""
    cfg = cfgmod.preset("tiny")
    torch.manual_seed(0)
    model = PoseCVAE(cfg.model)
    frames, poses = _clips(2, 6)
    eps = torch.randn(2, 5, cfg.model.N_dim, 8, 12, generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([True, False, False, True, False])
    with torch.no_grad():
        ref = reference_loss(model, Batch(frames, poses), mask, 0.5, eps=eps)
        out = Objective(model)(Batch(frames, poses), mask, 0.5, eps=eps)
        forced = Objective(model)(Batch(frames, poses), None, 0.5, eps=eps)
    torch.testing.assert_close(out.pred, ref.pred, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(forced.pred[:, 2], ref.pred[:, 2])  # step 3 fed back a prediction
