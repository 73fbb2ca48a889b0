"""PoseCVAE: the batched teacher-forced forward against the rollout, seeds, options, gradients."""
from __future__ import annotations

import itertools

import pytest
import torch

from posecast import config as cfgmod
from posecast.rollout import predict
from posecast.models import Objective, PoseCVAE, cvae
from posecast.data.sampling import Batch
from posecast.training.step import loss_step

B, T, H, W = 2, 5, 8, 12
OPTIONS = [dict(first_frame_cond=f, prior=p, output=o, down=0)
           for f, p, o in itertools.product([False, True], ["standard", "learned"], ["direct", "residual"])]
OPTIONS += [dict(first_frame_cond=False, prior="standard", output="masked", down=0),
            dict(first_frame_cond=True, prior="learned", output="masked_first", down=0),
            dict(first_frame_cond=False, prior="standard", output="direct", down=1),
            dict(first_frame_cond=True, prior="learned", output="masked", down=2),
            dict(first_frame_cond=True, prior="standard", output="composite", down=1)]
# model.arch unet (levels 2: 8 x 12 halves twice), with and without the previous frame
OPTIONS += [dict(first_frame_cond=True, prior="standard", output="masked_first", down=0, arch="unet", levels=2,
                 prev_frame_cond=False),
            dict(first_frame_cond=False, prior="learned", output="residual", down=0, arch="unet", levels=2),
            dict(first_frame_cond=True, prior="standard", output="direct", down=0, arch="posecast",
                 prev_frame_cond=False)]
# the first frame warped to the target pose, with the first frame's pose as an input (the recipe's shape)
OPTIONS += [dict(first_frame_cond=True, prior="standard", output="warped_first", down=0, arch="unet", levels=2,
                 prev_frame_cond=False, first_pose_cond=True),
            dict(first_frame_cond=True, prior="learned", output="warped_first", down=0, first_pose_cond=True)]
# model.pose_gate: new pixels and the flow only near where the pose changed (batched and step by step)
OPTIONS += [dict(first_frame_cond=True, prior="standard", output="warped_first", down=0, arch="unet", levels=2,
                 prev_frame_cond=False, first_pose_cond=True, pose_gate=1),
            dict(first_frame_cond=True, prior="learned", output="masked_first", down=0, pose_gate=2)]
IDS = [f"{o.get('arch', 'posecast')}-ffc={o['first_frame_cond']}-{o['prior']}-{o['output']}-down{o['down']}"
       + ("" if o.get("prev_frame_cond", True) else "-noprev")
       + (f"-gate{o['pose_gate']}" if o.get("pose_gate") else "") for o in OPTIONS]
ATOL = 1e-5  # batched (B*T) and per-step (B) convolutions may round differently


def _model(seed: int = 0, **options) -> PoseCVAE:
    torch.manual_seed(seed)
    cfg = cfgmod.override(cfgmod.preset("tiny"), **options).model
    return PoseCVAE(cfg).eval()


def _data(seed: int = 0, t: int = T) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, t, 3, H, W, generator=g), torch.rand(B, t, 3, H, W, generator=g)


@pytest.mark.slow
@pytest.mark.parametrize("options", OPTIONS, ids=IDS)
def test_forward_shapes(options: dict) -> None:
    model = _model(**options)
    frames, poses = _data()
    out = model(frames, poses)
    N, h, w = model.cfg.N_dim, H >> options["down"], W >> options["down"]  # latents at the encoders' size
    assert out.pred.shape == (B, T - 1, 3, H, W)
    assert ((out.pred >= 0) & (out.pred <= 1)).all()
    assert out.posterior.mu.shape == out.posterior.logvar.shape == out.z.shape == (B, T - 1, N, h, w)
    if options["prior"] == "learned":
        assert out.prior is not None and out.prior.mu.shape == (B, T - 1, N, h, w)
    else:
        assert out.prior is None
    roll = model.rollout(frames[:, 0], poses)
    assert roll.shape == (B, T, 3, H, W)
    assert torch.equal(roll[:, 0], frames[:, 0])


@pytest.mark.slow
@pytest.mark.parametrize("options", OPTIONS, ids=IDS)
def test_teacher_forced_forward_equals_rollout_on_ground_truth(options: dict) -> None:
    model = _model(**options)
    frames, poses = _data()
    with torch.no_grad():
        out = model(frames, poses, torch.ones(T - 1, dtype=torch.bool))
        default = model(frames, poses, None, eps=(out.z - out.posterior.mu) / torch.exp(0.5 * out.posterior.logvar))
        roll = model.rollout(frames[:, 0], poses, z=out.z, teacher=frames)
    torch.testing.assert_close(roll[:, 1:], out.pred, atol=ATOL, rtol=0)
    torch.testing.assert_close(default.pred, out.pred, atol=ATOL, rtol=0)  # None means all True


@pytest.mark.slow
@pytest.mark.parametrize("options", OPTIONS, ids=IDS)
def test_free_running_forward_equals_rollout_with_the_same_z(options: dict) -> None:
    model = _model(**options)
    frames, poses = _data()
    with torch.no_grad():
        out = model(frames, poses, torch.zeros(T - 1, dtype=torch.bool))
        roll = model.rollout(frames[:, 0], poses, z=out.z)
    torch.testing.assert_close(roll[:, 1:], out.pred, atol=ATOL, rtol=0)
    if options["prior"] == "learned":  # the prior of a fed-back step sees the fed-back frame
        with torch.no_grad():
            pri = model.prior(model.frame_encoder(out.pred[:, 1]), model.pose_encoder(poses[:, 3]))
        torch.testing.assert_close(out.prior.mu[:, 2], pri.mu, atol=ATOL, rtol=0)


@pytest.mark.parametrize("options", OPTIONS[::3] + OPTIONS[13:15], ids=IDS[::3] + IDS[13:15])
def test_mixed_teacher_forcing_mask(options: dict) -> None:
    # step s uses ground truth x_s where the mask is True, else its own prediction of x_s
    model = _model(**options)
    frames, poses = _data(t=6)
    mask = torch.tensor([False, True, False, False, True])  # step 0 is always forced
    with torch.no_grad():
        out = model(frames, poses, mask)
        teacher = frames.clone()
        for s in range(1, 5):
            if not mask[s]:
                teacher[:, s] = out.pred[:, s - 1]
        roll = model.rollout(frames[:, 0], poses, z=out.z, teacher=teacher)
    torch.testing.assert_close(roll[:, 1:], out.pred, atol=ATOL, rtol=0)
    # and it differs from both extremes, unless the model does not read the previous frame
    with torch.no_grad():
        forced = model(frames, poses, None, eps=(out.z - out.posterior.mu) / torch.exp(0.5 * out.posterior.logvar))
    if options.get("prev_frame_cond", True):
        assert not torch.allclose(forced.pred[:, 2], out.pred[:, 2], atol=1e-4)
    else:
        torch.testing.assert_close(forced.pred, out.pred, atol=ATOL, rtol=0)


def test_rollout_pose_chunks_and_batch_independence(monkeypatch) -> None:
    model = _model()
    frames, poses = _data(t=7)
    z = torch.randn(B, 6, model.cfg.N_dim, H, W)
    with torch.no_grad():
        full = model.rollout(frames[:, 0], poses, z=z)
        chunked = model.rollout(frames[:, 0], poses, z=z, pose_chunk=2)
        alone = model.rollout(frames[1:, 0], poses[1:], z=z[1:])
    torch.testing.assert_close(chunked, full, atol=ATOL, rtol=0)
    torch.testing.assert_close(alone, full[1:], atol=ATOL, rtol=0)
    # many sequences or large frames: the pose encoder takes at most ROLLOUT_PIXELS_PER_CALL at once
    calls = []
    hook = model.pose_encoder.register_forward_hook(lambda mod, args, res: calls.append(len(res)))
    monkeypatch.setattr(cvae, "ROLLOUT_PIXELS_PER_CALL", 5 * H * W)
    try:
        with torch.no_grad():
            capped = model.rollout(frames[:, 0], poses, z=z)
    finally:
        hook.remove()
    torch.testing.assert_close(capped, full, atol=ATOL, rtol=0)
    assert max(calls) <= 5 and sum(calls) == B * 6, calls


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_same_seed_same_prediction_different_seed_different(prior: str) -> None:
    model = _model(prior=prior)
    frames, poses = _data()
    a = predict(model, frames[:, 0], poses, seed=0)
    b = predict(model, frames[:, 0], poses, seed=0)
    c = predict(model, frames[:, 0], poses, seed=1)
    assert torch.equal(a, b)
    assert not torch.allclose(a[:, 1:], c[:, 1:], atol=1e-4)  # z sampled from the prior
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    with torch.inference_mode():
        assert torch.equal(model.rollout(frames[:, 0], poses, generator=g1),
                           model.rollout(frames[:, 0], poses, generator=g2))


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_z_mode_zero_is_deterministic(prior: str) -> None:
    model = _model(prior=prior)
    frames, poses = _data()
    a = predict(model, frames[:, 0], poses, z_mode="zero", seed=0)
    b = predict(model, frames[:, 0], poses, z_mode="zero", seed=123)
    c = predict(model, frames[:, 0], poses, z_mode="zero", seed=None)
    assert torch.equal(a, b) and torch.equal(a, c)
    if prior == "standard":  # the prior's mean is z = 0
        with torch.no_grad():
            zero = model.rollout(frames[:, 0], poses, z=torch.zeros(B, T - 1, model.cfg.N_dim, H, W))
        torch.testing.assert_close(a, zero, atol=1e-6, rtol=0)


def test_rollout_keeps_no_graph_and_restores_mode() -> None:
    model = _model().train()
    frames, poses = _data()
    out = predict(model, frames[:, 0], poses)
    assert not out.requires_grad and out.grad_fn is None
    assert model.training  # predict() switched to eval and back
    with torch.inference_mode():
        roll = model.rollout(frames[:, 0], poses)
    assert roll.grad_fn is None and not roll.requires_grad and roll.is_inference()
    # without inference mode the rollout is differentiable (one graph through time)
    roll = model.rollout(frames[:, 0], poses)
    assert roll.requires_grad


def test_predict_accepts_uint8() -> None:
    model = _model()
    frames, poses = _data()
    u8f, u8p = (frames * 255).round().to(torch.uint8), (poses * 255).round().to(torch.uint8)
    a = predict(model, u8f[:, 0], u8p, seed=0)
    b = predict(model, u8f[:, 0].float() / 255, u8p.float() / 255, seed=0)
    assert a.dtype == torch.float32 and torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("options", OPTIONS, ids=IDS)
def test_gradients_reach_every_parameter(options: dict) -> None:
    model = _model(**options).train()
    cfg = cfgmod.override(cfgmod.preset("tiny"), **options)
    frames, poses = _data()
    mask = torch.tensor([True, False, True, False])
    out = loss_step(Objective(model, cfg.schedule.kl_reduction), Batch(frames, poses), mask, 1.0,
                    precision=cfg.runtime.precision)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    # every module learns (single tiny channels may sit in a dead ReLU, so not every tensor)
    for name, module in model.named_children():
        norm = sum(float(p.grad.abs().sum()) for p in module.parameters())
        assert norm > 0, f"no gradient reaches {name}"
    names = {name for name, _ in model.named_children()}
    assert ("prior_net" in names) == (options["prior"] == "learned")


def _convs(module: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


def test_options_change_the_architecture() -> None:
    plain, ffc = _model(), _model(first_frame_cond=True)
    F, L, N = plain.cfg.F_dim, plain.cfg.L_dim, plain.cfg.N_dim
    assert _convs(plain.fusion)[0].in_channels == F + L + N
    assert _convs(ffc.fusion)[0].in_channels == F + L + N + F
    assert _model(prior="learned").prior_net is not None and plain.prior_net is None
    assert _convs(plain.generator)[-1].out_channels == 3
    assert _convs(_model(output="masked").generator)[-1].out_channels == 4  # RGB and a mask
    assert sum(c.stride == (2, 2) for c in _convs(_model(down=2).frame_encoder)) == 2
    assert all(c.stride == (1, 1) for c in _convs(plain))  # the lab: full resolution everywhere


@pytest.mark.parametrize("output", ["masked", "masked_first"])
def test_masked_output_keeps_the_base_frame_where_the_mask_is_closed(output: str) -> None:
    model = _model(output=output)
    last = _convs(model.generator)[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([3.0, 3.0, 3.0, -40.0]))  # mask sigmoid(-40) = 0: keep the base
    frames, poses = _data()
    with torch.no_grad():
        roll = model.rollout(frames[:, 0], poses, teacher=frames)
    for t in range(1, T):
        base = frames[:, t - 1] if output == "masked" else frames[:, 0]
        torch.testing.assert_close(roll[:, t], base, atol=1e-6, rtol=0)
    with torch.no_grad():
        last.bias.copy_(torch.tensor([40.0, 40.0, 40.0, 40.0]))  # mask open, white pixels
        assert torch.allclose(model.rollout(frames[:, 0], poses)[:, 1:], torch.ones(B, T - 1, 3, H, W))


def test_composite_output_picks_new_pixels_the_previous_or_the_first_frame() -> None:
    model = _model(output="composite")
    last = _convs(model.generator)[-1]
    assert last.out_channels == 6
    frames, poses = _data()
    for pick in range(3):
        bias = torch.tensor([40.0, 40.0, 40.0, -30.0, -30.0, -30.0])
        bias[3 + pick] = 30.0
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(bias)
            roll = model.rollout(frames[:, 0], poses, teacher=frames)
        for t in range(1, T):
            want = [torch.ones_like(frames[:, 0]), frames[:, t - 1], frames[:, 0]][pick]
            torch.testing.assert_close(roll[:, t], want, atol=1e-6, rtol=0)


def test_residual_output_copies_the_previous_frame_when_the_generator_says_zero() -> None:
    model = _model(output="residual")
    last = _convs(model.generator)[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    frames, poses = _data()
    first = frames[:, 0].clamp(0.01, 0.99)
    with torch.no_grad():
        roll = model.rollout(first, poses)
    for t in range(1, T):
        torch.testing.assert_close(roll[:, t], first, atol=1e-5, rtol=0)
    direct = _model(output="direct")
    last = _convs(direct.generator)[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        assert torch.allclose(direct.rollout(first, poses)[:, 1:], torch.full((B, T - 1, 3, H, W), 0.5))


def test_leaky_relu_slopes_are_not_one() -> None:
    # the lab's nn.LeakyReLU(True) pitfall: a slope of 1 makes the activation a no-op
    model = PoseCVAE(cfgmod.preset("lab").model)
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes and all(s < 0.5 for s in slopes)


@pytest.mark.parametrize("options", [dict(first_frame_cond=True, output="masked_first", down=0),
                                     dict(first_frame_cond=True, output="direct", down=1),
                                     dict(first_frame_cond=False, output="masked_first", down=0),
                                     dict(first_frame_cond=False, output="direct", down=0)])
def test_anchor_replaces_the_first_frame(options: dict) -> None:
    """forward(anchor=x_0) is the default; another anchor changes the prediction exactly when the
    model reads the first frame (first_frame_cond or masked_first), and only the anchor's path."""
    model = _model(**options)
    frames, poses = _data()
    other = torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(9))
    eps = torch.randn(B, T - 1, model.cfg.N_dim, H >> options["down"], W >> options["down"])
    mask = torch.tensor([True, False, True, False])
    with torch.no_grad():
        base = model(frames, poses, mask, eps=eps)
        same = model(frames, poses, mask, eps=eps, anchor=frames[:, 0].clone())
        moved = model(frames, poses, mask, eps=eps, anchor=other)
    torch.testing.assert_close(same.pred, base.pred, atol=ATOL, rtol=0)
    reads_first = options["first_frame_cond"] or options["output"] == "masked_first"
    assert (moved.pred - base.pred).abs().max() > 1e-6 if reads_first else torch.equal(moved.pred, base.pred)
    torch.testing.assert_close(moved.posterior.mu, base.posterior.mu)  # q(z | x_t, pose_t) ignores the anchor


def test_inverted_pose_input_reads_one_minus_pose() -> None:
    plain = _model(pose_input="raw")
    inv = _model(pose_input="inverted")
    inv.load_state_dict(plain.state_dict())  # the same weights: only the input changes
    poses = torch.rand(B, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(inv.pose_encoder(poses), plain.pose_encoder((1 - poses) * 4.0))
        assert not torch.allclose(inv.pose_encoder(poses), plain.pose_encoder(poses))
    with pytest.raises(cfgmod.ConfigError, match="model.pose_input"):
        cfgmod.override(cfgmod.preset("tiny"), pose_input="inverted", arch="lab").validate()


def test_a_new_warped_first_model_predicts_what_masked_first_does() -> None:
    """The flow channels start at exactly zero: a new warped_first model draws the frames of the
    masked_first model with the same other weights (training starts from the previous recipe)."""
    opts = dict(first_frame_cond=True, down=0, arch="unet", levels=2, prev_frame_cond=False)
    warped, masked = _model(output="warped_first", **opts), _model(output="masked_first", **opts)
    state = {k: (v[:4] if k.startswith("generator.conv.") else v) for k, v in warped.state_dict().items()}
    masked.load_state_dict(state)
    frames, poses = _data()
    with torch.no_grad():
        a = warped.rollout(frames[:, 0], poses, z_mode="zero")
        b = masked.rollout(frames[:, 0], poses, z_mode="zero")
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_first_pose_cond_reads_the_first_frames_pose_and_the_anchors() -> None:
    """With model.first_pose_cond the rollout reads pose 0 (the first frame's) and training reads the
    anchor's pose; without it pose 0 is never read."""
    opts = dict(first_frame_cond=True, output="warped_first", down=0, arch="unet", levels=2, prev_frame_cond=False)
    frames, poses = _data()
    other = poses.clone()
    other[:, 0] = torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(3))
    for cond in (True, False):
        model = _model(first_pose_cond=cond, **opts)
        with torch.no_grad():
            a = model.rollout(frames[:, 0], poses, z_mode="zero")
            b = model.rollout(frames[:, 0], other, z_mode="zero")
        assert (a - b).abs().max() > 1e-6 if cond else torch.equal(a, b)
    model = _model(first_pose_cond=True, **opts)
    eps = torch.zeros(B, T - 1, model.cfg.N_dim, H, W)
    with torch.no_grad():
        base = model(frames, poses, eps=eps)
        same = model(frames, poses, eps=eps, anchor=frames[:, 0].clone(), anchor_pose=poses[:, 0].clone())
        moved = model(frames, poses, eps=eps, anchor=frames[:, 0].clone(), anchor_pose=other[:, 0])
    torch.testing.assert_close(same.pred, base.pred, atol=ATOL, rtol=0)
    assert (moved.pred - base.pred).abs().max() > 1e-6
    with pytest.raises(ValueError, match="anchor_pose"):
        model(frames, poses, eps=eps, anchor=frames[:, 0])


def _opened(model: PoseCVAE) -> PoseCVAE:
    """The model with its generator's last layer biased to an open mask and a flow of about 2
    pixels: a model whose every pixel would differ from the first frame without a gate."""
    conv = [m for m in model.generator.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels in (4, 6)][-1]
    with torch.no_grad():
        conv.bias[3] += 5.0
        if conv.bias.shape[0] == 6:
            conv.bias[4:6] += 2.0
    return model


@pytest.mark.parametrize("output", ["masked_first", "warped_first"])
@pytest.mark.parametrize("prev", [False, True], ids=["independent", "step-by-step"])
def test_with_a_pose_gate_identical_poses_keep_the_first_frame(output: str, prev: bool) -> None:
    """model.pose_gate: where no pose differs from the first frame's within the radius, the frame is
    the first frame, in the rollout and in training, whatever the weights; elsewhere the model draws."""
    opts = dict(first_frame_cond=True, output=output, down=0, arch="unet", levels=2, prev_frame_cond=prev,
                first_pose_cond=True, pose_gate=1)
    model = _opened(_model(**opts))
    frames, poses = _data()
    still = poses[:, :1].expand(B, T, 3, H, W).clone()  # every pose the first frame's
    moved = still.clone()
    moved[:, 3, :, 1, 2] = 1 - moved[:, 3, :, 1, 2]  # one pose pixel changed at step 3 (row 1, column 2)
    with torch.no_grad():
        kept = model.rollout(frames[:, 0], still, z_mode="prior", generator=torch.Generator().manual_seed(0))
        out = model.rollout(frames[:, 0], moved, z_mode="zero")
        trained = model(frames, still)
    first = frames[:, :1].expand(B, T, 3, H, W)
    torch.testing.assert_close(kept, first, atol=1e-6, rtol=0)
    torch.testing.assert_close(trained.pred, first[:, 1:], atol=1e-6, rtol=0)
    near = torch.zeros(H, W, dtype=torch.bool)
    near[0:3, 1:4] = True  # within 1 pixel of (1, 2)
    assert (out[:, 3][..., near] - first[:, 3][..., near]).abs().mean() > 0.05  # drawn there
    torch.testing.assert_close(out[:, 3][..., ~near], first[:, 3][..., ~near], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:, [1, 2, 4]], first[:, [1, 2, 4]], atol=1e-6, rtol=0)
    ungated = _opened(_model(**{**opts, "pose_gate": 0}))
    with torch.no_grad():
        assert (ungated.rollout(frames[:, 0], still, z_mode="zero")[:, 1:] - first[:, 1:]).abs().mean() > 0.05
    with pytest.raises(ValueError, match="anchor_pose"):
        model(frames, poses, anchor=frames[:, 0])


def test_pose_gate_needs_an_output_over_the_first_frame() -> None:
    with pytest.raises(cfgmod.ConfigError, match="model.pose_gate"):
        cfgmod.override(cfgmod.preset("tiny"), pose_gate=2, output="direct").validate()
    with pytest.raises(cfgmod.ConfigError, match="model.pose_gate"):
        cfgmod.override(cfgmod.preset("tiny"), pose_gate=-1, output="masked_first").validate()


@pytest.mark.parametrize("arch", ["posecast", "lab", "unet"])
def test_each_architecture_builds_its_modules_with_the_configured_gate(arch: str) -> None:
    """ARCHS[arch] builds the modules PoseCVAE registers (in the state dict's order, the same
    weights for a seed), its own kind of pose encoder, and model.ffn_gate in every gated FFN."""
    from posecast.models.blocks import GatedConvFFN
    from posecast.models.lab import LabLabelEncoder
    from posecast.models.unet import Stem

    for gate in ("relu", "sigmoid"):
        cfg = cfgmod.override(cfgmod.preset("tiny"), arch=arch, ffn_gate=gate, prior="learned").model
        torch.manual_seed(0)
        model = PoseCVAE(cfg)
        torch.manual_seed(0)
        given = PoseCVAE(cfg, cvae.ARCHS[arch](cfg))
        assert [n for n, _ in model.named_children()] == ["frame_encoder", "pose_encoder", "posterior_net",
                                                          "fusion", "generator", "prior_net"]
        assert list(given.state_dict()) == list(model.state_dict())
        assert all(torch.equal(a, b) for a, b in zip(given.state_dict().values(), model.state_dict().values()))
        kind = {"posecast": cvae.default.PoseEncoder, "lab": LabLabelEncoder, "unet": Stem}[arch]
        assert type(model.pose_encoder) is kind
        ffns = [m for m in model.modules() if isinstance(m, GatedConvFFN)]
        assert ffns and all(m.gate == gate for m in ffns)
