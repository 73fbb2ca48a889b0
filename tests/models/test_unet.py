"""model.arch unet and model.prev_frame_cond: shapes, invariants and the config's checks."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from posecast import config as cfgmod
from posecast.config import ConfigError
from posecast.models import PoseCVAE, cvae
from posecast.models.unet import GroupNorm, Head, Stem, UNetFusion

B, T, H, W = 2, 5, 16, 24


def _model(seed: int = 0, **options) -> PoseCVAE:
    torch.manual_seed(seed)
    opts = dict(arch="unet", levels=3, first_frame_cond=True, output="masked_first", pose_input="inverted",
                frame_H=H, frame_W=W)
    opts.update(options)
    cfg = cfgmod.override(cfgmod.preset("tiny"), **opts).validate()
    return PoseCVAE(cfg.model).eval()


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, T, 3, H, W, generator=g), torch.rand(B, T, 3, H, W, generator=g)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_unet_fusion_keeps_the_size_and_halves_levels_times(levels: int) -> None:
    net = UNetFusion(in_ch=7, width=4, levels=levels)
    x = torch.randn(3, 5, H, W)
    out = net(x, torch.randn(3, 2, H, W))  # inputs are concatenated on channels
    assert out.shape == (3, 4, H, W)
    assert sum(c.stride == (2, 2) for c in net.down) == levels
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_unet_fusion_sees_the_whole_frame() -> None:
    # the bottom level's receptive field spans the frame: a change in one corner reaches the other
    torch.manual_seed(0)
    net = UNetFusion(in_ch=3, width=4, levels=3).eval()
    x = torch.rand(1, 3, H, W)
    y = x.clone()
    y[..., 0, 0] += 1.0
    with torch.no_grad():
        diff = (net(x) - net(y)).abs()
    assert diff[..., H - 1, W - 1].max() > 0


def test_head_starts_near_zero_so_masked_first_starts_halfway_to_the_first_frame() -> None:
    model = _model()
    assert isinstance(model.generator, Head)
    frames, poses = _data()
    with torch.no_grad():
        roll = model.rollout(frames[:, 0], poses, z_mode="zero")
    # logits near zero: mask 0.5 over RGB 0.5
    torch.testing.assert_close(roll[:, 1:], (0.25 + 0.5 * frames[:, :1]).expand(-1, T - 1, -1, -1, -1),
                               atol=0.02, rtol=0)


def test_stem_inverted_reads_one_minus_pose() -> None:
    torch.manual_seed(0)
    stem, inv = Stem(3, 4), Stem(3, 4, inverted=True)
    inv.load_state_dict(stem.state_dict())
    x = torch.rand(2, 3, H, W)
    torch.testing.assert_close(inv(x), stem((1 - x) * Stem.GAIN))


def _perturbed(model: PoseCVAE) -> PoseCVAE:
    with torch.no_grad():  # leave the zero start, so the output depends on the inputs
        for p in model.generator.parameters():
            p.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("arch", ["unet", "posecast"])
def test_without_the_previous_frame_the_rollout_ignores_it(arch: str) -> None:
    model = _perturbed(_model(arch=arch, prev_frame_cond=False)) if arch == "unet" else \
        _model(arch=arch, prev_frame_cond=False, output="direct")
    frames, poses = _data()
    other = torch.rand_like(frames)
    with torch.no_grad():
        free = model.rollout(frames[:, 0], poses, z_mode="zero")
        fed = model.rollout(frames[:, 0], poses, z_mode="zero", teacher=other)
        single = model.rollout(frames[:, 0], poses[:, [0, 3]], z_mode="zero")  # frame 3 alone
    torch.testing.assert_close(fed, free)
    torch.testing.assert_close(single[:, 1], free[:, 3], atol=1e-5, rtol=0)
    assert _conv_in(model.fusion) == model.cfg.L_dim + model.cfg.N_dim + model.cfg.F_dim  # pose, z, first frame


def test_with_the_previous_frame_the_rollout_reads_it() -> None:
    model = _perturbed(_model(prev_frame_cond=True))
    frames, poses = _data()
    with torch.no_grad():
        free = model.rollout(frames[:, 0], poses, z_mode="zero")
        fed = model.rollout(frames[:, 0], poses, z_mode="zero", teacher=torch.rand_like(frames))
    assert not torch.allclose(fed[:, 2:], free[:, 2:], atol=1e-4)
    assert _conv_in(model.fusion) == model.cfg.F_dim + model.cfg.L_dim + model.cfg.N_dim + model.cfg.F_dim


def _conv_in(fusion: torch.nn.Module) -> int:
    return next(m for m in fusion.modules() if isinstance(m, torch.nn.Conv2d)).in_channels


def test_a_closed_mask_keeps_the_first_frame_whatever_the_pose() -> None:
    # masked_first with a closed mask (large negative mask logit) returns the first frame exactly,
    # whatever the pose: the background the first frame shows is kept
    model = _model(prev_frame_cond=False)
    with torch.no_grad():
        model.generator.conv.bias[3] = -60.0
    frames, poses = _data()
    with torch.no_grad():
        roll = model.rollout(frames[:, 0], poses, z_mode="zero")
    torch.testing.assert_close(roll, frames[:, :1].expand_as(roll), atol=1e-6, rtol=0)


@pytest.mark.parametrize("fields,where", [
    (dict(arch="unet", levels=3, frame_H=20), "data.frame_H"),
    (dict(arch="unet", down=1), "model.down"),
    (dict(levels=0), "model.levels"),
    (dict(prev_frame_cond=False, output="masked"), "model.output"),
    (dict(prev_frame_cond=False, output="residual"), "model.output"),
    (dict(prev_frame_cond=False, prior="learned"), "model.prior"),
])
def test_config_rejects_what_the_unet_or_a_model_without_the_previous_frame_cannot_do(fields: dict,
                                                                                     where: str) -> None:
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        cfgmod.override(cfgmod.preset("tiny"), **fields).validate()


@pytest.mark.parametrize("z_mode", ["zero", "prior"])
def test_the_batched_rollout_without_the_previous_frame_equals_one_step_at_a_time(z_mode: str, monkeypatch) -> None:
    # pose_chunk 1 decodes one step per call; 3 decodes three at once (and a last chunk of one)
    model = _perturbed(_model(prev_frame_cond=False))
    frames, poses = _data()
    with torch.no_grad():
        one = model.rollout(frames[:, 0], poses, z_mode=z_mode, generator=torch.Generator().manual_seed(3), pose_chunk=1)
        many = model.rollout(frames[:, 0], poses, z_mode=z_mode, generator=torch.Generator().manual_seed(3), pose_chunk=3)
    torch.testing.assert_close(many, one, atol=1e-5, rtol=0)
    # many sequences: fewer steps per call, the same frames
    calls = []
    hook = model.generator.register_forward_hook(lambda mod, args, res: calls.append(len(res)))
    try:
        with torch.no_grad():
            monkeypatch.setattr(cvae, "ROLLOUT_PIXELS_PER_CALL", 5 * frames.shape[-2] * frames.shape[-1])
            capped = model.rollout(frames[:, 0], poses, z_mode=z_mode, generator=torch.Generator().manual_seed(3),
                                   pose_chunk=3)
    finally:
        hook.remove()
    torch.testing.assert_close(capped, one, atol=1e-5, rtol=0)
    B, T = poses.shape[:2]
    assert max(calls) <= 5 and sum(calls) == B * (T - 1), calls  # at most 5 frames per decode
    if z_mode == "prior":  # the draws matter: another seed gives other frames
        with torch.no_grad():
            other = model.rollout(frames[:, 0], poses, z_mode=z_mode, generator=torch.Generator().manual_seed(4))
        assert not torch.allclose(other, one, atol=1e-4)


def _scaled_output_growth(norm: str, scale: float = 3.0) -> float:
    """How much the U-Net's output grows when every weight of it is multiplied by ``scale``."""
    torch.manual_seed(0)
    net = UNetFusion(in_ch=6, width=8, levels=3, norm=norm).eval()
    x = torch.randn(2, 6, H, W)
    with torch.no_grad():
        before = net(x).std()
        for name, p in net.named_parameters():
            if name.endswith("weight") and p.dim() > 1:  # the convolutions, not GroupNorm's affine
                p.mul_(scale)
        return float(net(x).std() / before)


def test_group_norm_bounds_how_the_unet_grows_with_its_weights() -> None:
    """model.norm group: weights 3x larger grow the output by the few convolutions on the stream
    (input, down, up: about 3**3.6 here), every other one reads a normalised input; without a norm
    the growth compounds through the whole depth (about 3**6.4; the recipe's 60-minute runs
    without one diverged)."""
    assert _scaled_output_growth("none") > 3.0 ** 6
    assert _scaled_output_growth("group") < 3.0 ** 4


def test_norm_group_puts_group_norms_in_the_unet_and_head_only() -> None:
    plain, normed = _model(), _model(norm="group")
    count = lambda m: sum(isinstance(x, torch.nn.GroupNorm) for x in m.modules())  # noqa: E731
    assert count(plain) == 0
    n_blocks = 3 + 1 + 1 + 3  # enc (levels + 1), mid, dec (levels)
    assert count(normed.fusion) == 2 * n_blocks and count(normed.generator) == 1
    frames, poses = _data()
    normed.train()
    ((normed(frames, poses).pred - frames[:, 1:]) ** 2).mean().backward()
    assert all(p.grad is not None for p in normed.fusion.parameters())
    with pytest.raises(ConfigError, match="model.norm"):
        cfgmod.override(cfgmod.preset("tiny"), norm="group").validate()


def test_group_norm_is_torchs_in_fp32_and_normalises_bf16_in_fp32(monkeypatch) -> None:
    """model.norm group's GroupNorm: fp32 and fp64 input take nn.GroupNorm's path (the same output,
    the same state_dict, so older checkpoints load); bf16 input (what bf16 autocast's convolutions
    hand it) reaches torch's group_norm as fp32 (spied: torch's own path would hand it bf16) and
    comes back bf16, the fp32 result rounded, with gradients to the input, weight and bias."""
    torch.manual_seed(0)
    ours, ref = GroupNorm(4, 16), torch.nn.GroupNorm(4, 16)
    with torch.no_grad():
        ref.weight.normal_(), ref.bias.normal_()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 16, 8, 12).contiguous(memory_format=torch.channels_last) * 5 + 2
    assert torch.equal(ours(x), ref(x))
    assert torch.equal(ours.double()(x.double()), ref.double()(x.double()))  # fp64: not rounded through fp32
    ours.float(), ref.float()
    seen, group_norm = [], F.group_norm
    monkeypatch.setattr(F, "group_norm", lambda inp, *a, **k: seen.append(inp.dtype) or group_norm(inp, *a, **k))
    xb = x.to(torch.bfloat16).requires_grad_(True)
    out = ours(xb)
    assert seen == [torch.float32]
    ref(xb.detach())
    assert seen == [torch.float32, torch.bfloat16]  # the spy tells the two paths apart
    exact = ref(xb.detach().float())
    assert out.dtype == torch.bfloat16 and torch.equal(out, exact.to(torch.bfloat16))
    out.float().square().sum().backward()
    assert xb.grad is not None and xb.grad.dtype == torch.bfloat16 and xb.grad.abs().sum() > 0
    assert ours.weight.grad.abs().sum() > 0 and ours.bias.grad.abs().sum() > 0
    half = GroupNorm(4, 16).to(torch.bfloat16)  # a module cast to bf16 as a whole still runs
    assert half(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_group_norm_under_bf16_autocast_hands_the_next_layer_bf16() -> None:
    """In a CPU bf16 autocast region a convolution gives the norm bf16, and the norm gives bf16 back
    (torch's GroupNorm there does too), the same values as normalising that input in fp32."""
    torch.manual_seed(0)
    conv, norm = torch.nn.Conv2d(3, 8, 3, padding=1), GroupNorm(4, 8)
    x = torch.rand(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv(x)
        out = norm(h)
    assert h.dtype == out.dtype == torch.bfloat16
    assert torch.equal(out, torch.nn.GroupNorm.forward(norm, h.float()).to(torch.bfloat16))
