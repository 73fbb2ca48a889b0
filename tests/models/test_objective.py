"""KL and reconstruction terms of the model's objective (posecast.models.objective)."""
from __future__ import annotations

import math

import pytest
import torch

from posecast.models.parts import Gaussian
from posecast.models.objective import elbo_loss, kl_divergence, reconstruction

B, S, N, H, W = 3, 2, 2, 2, 2


def _gauss(mu: float | torch.Tensor, logvar: float | torch.Tensor) -> Gaussian:
    shape = (B, S, N, H, W)
    mu = torch.full(shape, float(mu)) if not torch.is_tensor(mu) else mu
    logvar = torch.full(shape, float(logvar)) if not torch.is_tensor(logvar) else logvar
    return Gaussian(mu, logvar)


def test_kl_standard_prior_is_zero_at_the_prior() -> None:
    kl = kl_divergence(_gauss(0.0, 0.0))
    assert kl.shape == (S,)
    assert torch.equal(kl, torch.zeros(S))


def test_kl_lab_and_mean_reductions_hand_computed() -> None:
    # mu = 1, logvar = 0: 0.5 per latent element
    q = _gauss(1.0, 0.0)
    lab = kl_divergence(q, reduction="lab")  # summed over N*H*W = 8 elements and the batch, / B
    mean = kl_divergence(q, reduction="mean")
    assert torch.allclose(lab, torch.full((S,), 0.5 * N * H * W))
    assert torch.allclose(mean, torch.full((S,), 0.5))


def test_kl_lab_reduction_is_sum_over_latents_divided_by_batch() -> None:
    g = torch.Generator().manual_seed(0)
    mu, lv = torch.randn(B, S, N, H, W, generator=g), torch.randn(B, S, N, H, W, generator=g)
    per_elem = -0.5 * (1 + lv - mu.pow(2) - lv.exp())
    lab = kl_divergence(Gaussian(mu, lv), reduction="lab")
    assert torch.allclose(lab, per_elem.sum(dim=(0, 2, 3, 4)) / B)
    assert torch.allclose(kl_divergence(Gaussian(mu, lv), reduction="mean"), per_elem.mean(dim=(0, 2, 3, 4)))
    assert not torch.allclose(lab[0], lab[1])  # one value per time step


def test_kl_q_equals_p_is_zero() -> None:
    g = torch.Generator().manual_seed(1)
    q = Gaussian(torch.randn(B, S, N, H, W, generator=g), torch.randn(B, S, N, H, W, generator=g))
    for reduction in ("lab", "mean"):
        kl = kl_divergence(q, Gaussian(q.mu.clone(), q.logvar.clone()), reduction=reduction)
        assert torch.allclose(kl, torch.zeros(S), atol=1e-6)


def test_kl_against_a_learned_prior_hand_computed() -> None:
    # q = N(0, 1), p = N(1, e^2): KL = log(sigma_p/sigma_q) + (var_q + (mu_q - mu_p)^2) / (2 var_p) - 1/2
    kl = kl_divergence(_gauss(0.0, 0.0), _gauss(1.0, 2.0), reduction="mean")
    expected = 1.0 + 2.0 / (2 * math.e ** 2) - 0.5
    assert torch.allclose(kl, torch.full((S,), expected))
    # p = N(0, I) given explicitly equals the standard-prior formula
    q = _gauss(0.3, -0.7)
    assert torch.allclose(kl_divergence(q, _gauss(0.0, 0.0)), kl_divergence(q, None))


def test_kl_is_nonnegative() -> None:
    g = torch.Generator().manual_seed(2)
    q = Gaussian(torch.randn(B, S, N, H, W, generator=g), torch.randn(B, S, N, H, W, generator=g))
    p = Gaussian(torch.randn(B, S, N, H, W, generator=g), torch.randn(B, S, N, H, W, generator=g))
    assert (kl_divergence(q, p) >= 0).all() and (kl_divergence(q) >= 0).all()


def test_kl_unknown_reduction() -> None:
    with pytest.raises(ValueError, match="reduction"):
        kl_divergence(_gauss(0.0, 0.0), reduction="sum")


def test_reconstruction_is_mse_per_step() -> None:
    target = torch.zeros(2, 3, 3, 4, 4)
    pred = target.clone()
    pred[:, 1] = 0.5  # step 1: MSE 0.25
    pred[0, 2, 0] = 1.0  # step 2: one of 3 channels of one of 2 samples wrong by 1 -> 1/6
    assert torch.allclose(reconstruction(pred, target), torch.tensor([0.0, 0.25, 1 / 6]))


def test_reconstruction_counts_only_the_valid_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 3, 4, 5, generator=g), torch.rand(2, 3, 3, 4, 5, generator=g)
    everything = torch.ones(2, 4, 5, dtype=torch.bool)  # [B, H, W]
    assert torch.allclose(reconstruction(pred, target, everything), reconstruction(pred, target))
    valid = everything.clone()
    valid[0, :, :2] = False  # sample 0's two left columns were filled in
    valid[1, :, 4] = False
    valid[1, 0, 0] = False  # and one pixel of sample 1
    err = (pred - target).pow(2)
    expected = torch.stack([(err[0, s][..., 2:].sum() + err[1, s][..., :4].sum() - err[1, s][:, 0, 0].sum()) / (3 * 27)
                            for s in range(3)])  # the mean over the 12 + 15 counted pixels
    assert torch.allclose(reconstruction(pred, target, valid), expected)
    wrong = pred.clone()
    wrong[0, ..., :2] += 5.0
    wrong[1, ..., 4] -= 5.0  # what the left-out columns predict does not matter
    assert torch.equal(reconstruction(wrong, target, valid), reconstruction(pred, target, valid))
    pred.requires_grad_(True)
    reconstruction(pred, target, valid).sum().backward()
    assert (pred.grad[0, ..., :2] == 0).all() and (pred.grad[0, ..., 2:] != 0).all()


def test_l1_reconstruction_trains_on_the_absolute_error_and_reports_the_mse() -> None:
    """schedule.recon l1: the loss is the mean absolute error (over the valid pixels), its gradient
    the error's sign over the count; the output's mse stays the MSE."""
    target = torch.zeros(2, 3, 3, 4, 4)
    pred = target.clone()
    pred[:, 1] = 0.5  # step 1: L1 0.5, MSE 0.25
    pred[0, 2, 0] = -1.0  # step 2: L1 1/6, MSE 1/6
    assert torch.allclose(reconstruction(pred, target, kind="l1"), torch.tensor([0.0, 0.5, 1 / 6]))
    valid = torch.ones(2, 4, 4, dtype=torch.bool)
    valid[1, :, :2] = False  # 8 of sample 1's 16 pixels filled in
    pred.requires_grad_(True)
    q = _gauss(0.0, 0.0)
    out = elbo_loss(pred, target, Gaussian(q.mu[:2, :3], q.logvar[:2, :3]), None, 1.0, "lab", valid, recon="l1")
    counted = 3 * (16 + 8)  # channels x counted pixels of one step
    assert torch.allclose(out.loss, torch.tensor(0.5 + 16 / counted))  # step 2: one channel of sample 0
    assert torch.allclose(out.mse, reconstruction(pred.detach(), target, valid).sum())
    out.loss.backward()
    assert torch.allclose(pred.grad[0, 1], torch.full((3, 4, 4), 1 / counted))
    assert (pred.grad[1, :, :, :, :2] == 0).all()  # left-out pixels have no gradient
    assert torch.allclose(pred.grad[0, 2, 0], torch.full((4, 4), -1 / counted))
    with pytest.raises(ValueError, match="unknown reconstruction loss 'l2'"):
        reconstruction(pred, target, kind="l2")


def test_beta_zero_keeps_the_kl_out_of_the_loss() -> None:
    """0 * inf is NaN: with beta 0 the loss is the MSE alone, whatever the KL (in fp32 from bf16)."""
    target = torch.zeros(B, S, 3, 4, 4)
    pred = torch.full((B, S, 3, 4, 4), 0.5, dtype=torch.bfloat16, requires_grad=True)
    q = _gauss(1e20, 0.0)  # a KL that overflows
    out = elbo_loss(pred, target, q, None, 0.0, "lab")
    assert out.loss.dtype == torch.float32 and torch.equal(out.loss, out.mse) and out.mse == 0.25 * S
    assert not torch.isfinite(out.kl)
    assert torch.isinf(elbo_loss(pred, target, q, None, 0.1, "lab").loss)
    out.loss.backward()
    assert torch.isfinite(pred.grad).all()


def test_kl_is_never_below_zero_for_logvars_near_zero(monkeypatch) -> None:
    """A negative KL was printed in bf16 training: with logvars within rounding of 0, 1 + lv - e^lv
    is a difference of nearly equal numbers, and an exp one ulp low (vectorised exp is accurate to
    about 1 ulp) puts it below 0. The expm1 form has no such cancellation and is clamped at 0:
    it stays >= 0 even when exp and expm1 both round down."""
    lv = torch.cat([torch.linspace(-1e-3, 1e-3, 4001), torch.tensor([1e-8, -1e-8, 3e-5, -3e-5])])
    lv = lv.to(torch.bfloat16).float().view(1, -1, 1, 1, 1)  # [B, S, N, H, W] as a bf16 forward gives them
    q = Gaussian(torch.zeros_like(lv), lv)
    torch.testing.assert_close(kl_divergence(q, reduction="mean"), (lv.double().exp() - 1 - lv).float().view(-1) / 2,
                               atol=1e-9, rtol=1e-3)
    low = 1 - 2.0 ** -23  # one ulp below 1
    exp, expm1 = torch.Tensor.exp, torch.expm1
    monkeypatch.setattr(torch.Tensor, "exp", lambda x: exp(x) * low)
    monkeypatch.setattr(torch, "expm1", lambda x: expm1(x) - x.abs() * 2.0 ** -23)
    assert (-0.5 * (1 + lv - lv.exp()) < 0).any()  # the old form, with such an exp
    for reduction in ("lab", "mean"):
        assert (kl_divergence(q, reduction=reduction) >= 0).all()
    p = Gaussian(torch.zeros_like(lv), lv + 1e-7)
    assert (kl_divergence(q, p, reduction="mean") >= 0).all()
