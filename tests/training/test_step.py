"""The one step function (posecast.training.step): the loss of a batch, the optimiser step, the
learning rate of a resumed run."""
from __future__ import annotations

import math

import pytest
import torch

from posecast.data.sampling import Batch
from posecast.models import Objective, PoseCVAE
from posecast.models.objective import kl_divergence, reconstruction
from posecast.training.step import NonFiniteLossError, loss_step, make_optimizer, make_scheduler, rebase_lr, train_step
from posecast_testing import tiny_config


def _tiny_model_and_clips():
    """The tiny preset's model (seed 0) and a batch of 2 random uint8 clips of 4 frames and poses."""
    torch.manual_seed(0)
    cfg = tiny_config()
    model = PoseCVAE(cfg.model)
    frames = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8)
    poses = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8)
    return cfg, model, frames, poses


def test_loss_step_is_mse_plus_beta_kl_summed_over_steps() -> None:
    cfg, model, frames, poses = _tiny_model_and_clips()
    torch.manual_seed(1)
    out = loss_step(Objective(model, cfg.schedule.kl_reduction), Batch(frames, poses), None, 0.3,
                    precision=cfg.runtime.precision)
    assert torch.allclose(out.loss, out.mse + 0.3 * out.kl)
    torch.manual_seed(1)
    cvae = model(frames.float() / 255, poses.float() / 255)
    mse = reconstruction(cvae.pred, frames[:, 1:].float() / 255)
    assert torch.allclose(out.mse, mse.sum())
    assert torch.allclose(out.kl, kl_divergence(cvae.posterior).sum())


def test_schedule_recon_l1_reaches_the_trainers_objective(synth_root, tmp_path) -> None:
    """schedule.recon: l1 is the loss the trainer steps on (the L1 of the same forward plus beta
    KL), and the MSE is still what it logs."""
    from posecast.training.trainer import Trainer

    cfg, model, frames, poses = _tiny_model_and_clips()
    objective = Objective(model, cfg.schedule.kl_reduction, "l1")
    torch.manual_seed(1)
    out = loss_step(objective, Batch(frames, poses), None, 0.3, precision="fp32")
    torch.manual_seed(1)
    cvae = model(frames.float() / 255, poses.float() / 255)
    target = frames[:, 1:].float() / 255
    l1 = reconstruction(cvae.pred, target, kind="l1").sum()
    assert torch.allclose(out.loss, l1 + 0.3 * out.kl) and torch.allclose(out.mse, reconstruction(cvae.pred, target).sum())
    trainer = Trainer(tiny_config(num_epoch=2, recon="l1"), synth_root, tmp_path / "run", progress=False,
                      log=lambda _: None)
    assert trainer.objective.recon == "l1"
    with pytest.raises(ValueError, match="unknown reconstruction loss"):
        Objective(model, "lab", "huber")


def test_recon_until_switches_the_trainers_loss_to_the_mse(synth_root, tmp_path) -> None:
    """schedule.recon_until 0.5 of 2 epochs: epoch 0 steps on the L1, epoch 1 on the MSE, whose
    loss is then exactly the logged MSE plus beta KL (under the L1 it is not)."""
    from posecast.training.trainer import Trainer

    cfg = tiny_config(num_epoch=2, recon="l1", recon_until=0.5, kl_anneal_type="None")
    trainer = Trainer(cfg, synth_root, tmp_path / "run", progress=False, log=lambda _: None)
    rows = [trainer.train_epoch(e, limit=2) for e in range(2)]
    assert trainer.schedules.recon(0) == "l1" and trainer.objective.recon == "mse"
    l1, mse = rows
    assert mse["train_loss"] == pytest.approx(mse["train_mse"] + mse["beta"] * mse["train_kl"], rel=1e-5)
    assert abs(l1["train_loss"] - (l1["train_mse"] + l1["beta"] * l1["train_kl"])) > 1e-3


def test_loss_step_counts_the_valid_columns_of_the_batch() -> None:
    """A batch's ``valid`` (shift augmentation with data.shift_mask) reaches the MSE."""
    cfg, model, frames, poses = _tiny_model_and_clips()
    valid = torch.ones(2, frames.shape[-2], 8, dtype=torch.bool)  # [B, H, W]
    valid[0, :, :3] = False
    torch.manual_seed(1)
    objective, precision = Objective(model, cfg.schedule.kl_reduction), cfg.runtime.precision
    out = loss_step(objective, Batch(frames, poses, valid=valid), None, 0.3, precision=precision)
    torch.manual_seed(1)
    plain = loss_step(objective, Batch(frames, poses), None, 0.3, precision=precision)
    assert torch.equal(out.pred, plain.pred) and torch.equal(out.kl, plain.kl)
    target = frames[:, 1:].float() / 255
    assert torch.allclose(out.mse, reconstruction(out.pred, target, valid).sum())
    assert not torch.allclose(out.mse, plain.mse)


def _stepped(milestones: list[int], epochs: int, lr: float = 1e-3) -> tuple[torch.nn.Linear, dict, dict]:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    cfg = tiny_config(lr=lr, milestones=milestones, gamma=0.5).optim
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    for _ in range(epochs):
        opt.step()
        sched.step()
    return model, opt.state_dict(), sched.state_dict()


def test_rebase_lr_scales_the_current_rate_and_keeps_the_milestones() -> None:
    """`--resume RUN --lr X`: the rate of the resumed epoch is X times the decay already passed,
    later milestones still apply, and the scheduler reports the rate the optimiser holds."""
    for milestones in ([1, 3], [0, 3]):
        model, opt_state, sched_state = _stepped(milestones, 2)  # epoch 2: one milestone passed
        cfg = tiny_config(lr=1e-4, milestones=milestones, gamma=0.5).optim
        opt = make_optimizer(model, cfg)
        sched = make_scheduler(opt, cfg)
        opt.load_state_dict(opt_state)
        sched.load_state_dict(sched_state)
        sched = rebase_lr(opt, sched, 1e-3, 1e-4)
        decayed = 1e-3 * 0.5 ** sum(m <= 2 for m in milestones)
        assert opt.param_groups[0]["lr"] == decayed * (1e-4 / 1e-3)
        assert sched.base_lrs == [1e-4] and sched.get_last_lr() == [opt.param_groups[0]["lr"]]
        assert sched.last_epoch == 2
        rates = []
        for _ in range(2):
            opt.step()
            sched.step()
            rates.append(opt.param_groups[0]["lr"])
        assert rates == [decayed * (1e-4 / 1e-3) * 0.5, decayed * (1e-4 / 1e-3) * 0.5]  # milestone 3


def test_a_non_finite_loss_leaves_the_weights_alone() -> None:
    torch.manual_seed(0)
    cfg = tiny_config()
    model = PoseCVAE(cfg.model)
    opt = make_optimizer(model, cfg.optim)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frames = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(NonFiniteLossError) as info:
        train_step(Objective(model), opt, Batch(frames, frames.clone()), None, 0.5, precision=cfg.runtime.precision,
                   grad_clip=cfg.optim.grad_clip, all_finite=lambda loss: False)
    assert math.isfinite(info.value.value)  # the loss itself (finite here: all_finite said no)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    out = train_step(Objective(model), opt, Batch(frames, frames.clone()), None, 0.5, precision=cfg.runtime.precision,
                     grad_clip=cfg.optim.grad_clip)
    assert set(out) == {"loss", "mse", "kl"} and out["loss"] == pytest.approx(out["mse"] + 0.5 * out["kl"])
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_cosine_schedule_falls_from_lr_to_zero_and_resumes_rebased() -> None:
    """optim.lr_schedule cosine: epoch e runs at lr * (1 + cos(pi e / num_epoch)) / 2; a resumed
    run with another --lr keeps its place on the curve, scaled to the new rate."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    cfg = tiny_config(lr=1e-3, lr_schedule="cosine", num_epoch=8).optim
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    rates = []
    for _ in range(8):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [1e-3 * (1 + math.cos(math.pi * e / 8)) / 2 for e in range(8)]
    assert rates == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # the end of the curve
    # resume after epoch 3 with half the rate
    opt2 = make_optimizer(model, cfg)
    sched2 = make_scheduler(opt2, cfg)
    for _ in range(3):
        opt2.step()
        sched2.step()
    sched2 = rebase_lr(opt2, sched2, 1e-3, 5e-4)
    later = []
    for _ in range(3):
        later.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert later == pytest.approx([e / 2 for e in expected[3:6]], rel=1e-9)
