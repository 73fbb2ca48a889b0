"""The speed options of posecast.perf against the plain path: the same outputs within tolerance
in fp32 (channels_last, torch.compile), a bounded PSNR difference in bf16."""
from __future__ import annotations

import copy
import os

import pytest
import torch

from posecast import config as cfgmod
from posecast import perf
from posecast.metrics import psnr
from posecast.rollout import evaluate_sequences, predict
from posecast.models import PoseCVAE
from posecast.runtime import tune_allocator
from posecast.data.sampling import Batch
from posecast.models import Objective
from posecast.training.step import loss_step

B, T, H, W = 2, 5, 8, 12


def _model(seed: int = 0, **options) -> PoseCVAE:
    torch.manual_seed(seed)
    cfg = cfgmod.override(cfgmod.preset("tiny"), **options).model
    return PoseCVAE(cfg)


def _data(seed: int = 0, t: int = T) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, t, 3, H, W, generator=g), torch.rand(B, t, 3, H, W, generator=g)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _train_outputs(model: PoseCVAE, frames, poses, mask, precision: str = "fp32"):
    """loss_step (the Trainer's) + backward, with fixed noise: losses, predictions, gradients."""
    cfg = cfgmod.override(cfgmod.preset("tiny"), precision=precision)
    g = torch.Generator().manual_seed(1)
    eps = torch.randn(B, frames.shape[1] - 1, model.cfg.N_dim, H, W, generator=g)

    class WithEps(Objective):  # loss_step calls objective(batch, mask, beta)
        def forward(self, batch, tf_mask, beta):
            return super().forward(batch, tf_mask, beta, eps=eps)

    model.zero_grad(set_to_none=True)
    out = loss_step(WithEps(model, cfg.schedule.kl_reduction), Batch(frames, poses), mask, 1.0,
                    precision=cfg.runtime.precision)
    out.loss.backward()
    with torch.no_grad():
        pred = model(frames, poses, mask, eps=eps).pred
    return {k: getattr(out, k).detach() for k in ("loss", "mse", "kl")}, pred, _grads(model)


MASKS = {"tf": [True] * (T - 1), "no-tf": [False] * (T - 1), "mixed": [True, False, True, True]}


@pytest.mark.parametrize("tf", list(MASKS))
@pytest.mark.parametrize("options", [{}, dict(prior="learned", first_frame_cond=True, output="residual")],
                         ids=["lab-options", "other-options"])
@pytest.mark.slow
def test_channels_last_training_matches_plain(tf: str, options: dict) -> None:
    plain = _model(**options)
    fast = perf.prepare(copy.deepcopy(plain), perf.FastOptions(channels_last=True))
    assert fast.generator.network[-1].weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.channels_last and not plain.channels_last
    frames, poses = _data()
    mask = torch.tensor(MASKS[tf])  # mixed: teacher-forced steps 0, 2, 3 (not consecutive)
    loss_p, pred_p, grad_p = _train_outputs(plain, frames, poses, mask)
    loss_f, pred_f, grad_f = _train_outputs(fast, frames, poses, mask)
    torch.testing.assert_close(pred_f, pred_p, atol=1e-5, rtol=0)
    for k in loss_p:
        torch.testing.assert_close(loss_f[k], loss_p[k], atol=1e-5, rtol=1e-5)
    assert grad_f.keys() == grad_p.keys()
    for name in grad_p:
        torch.testing.assert_close(grad_f[name], grad_p[name], atol=1e-4, rtol=1e-3, msg=name)


def _conv_input_layouts(model: PoseCVAE) -> tuple[list[str], list]:
    """Forward hooks on every convolution: the names of those whose input is not NHWC."""
    bad: list[str] = []

    def hook(mod, inputs, _out, name=""):
        x = inputs[0]
        if x.shape[1] > 1 and not x.is_contiguous(memory_format=torch.channels_last):
            bad.append(name)

    handles = [m.register_forward_hook(lambda mod, i, o, name=n: hook(mod, i, o, name))
               for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    return bad, handles


@pytest.mark.parametrize("tf", list(MASKS))
@pytest.mark.parametrize("options", [{}, dict(first_frame_cond=True, output="masked_first", ffn_gate="sigmoid"),
                                     dict(arch="unet", levels=2, first_frame_cond=True, output="masked_first",
                                          prev_frame_cond=False, pose_input="inverted")])
def test_channels_last_model_keeps_every_activation_nhwc(tf: str, options: dict) -> None:
    """With channels_last weights, the forward and the rollout convert their NCHW inputs once and
    every convolution then reads NHWC: no reorder per layer (the clip's time slices, the
    posterior's concatenation and the index over teacher-forced steps keep the layout)."""
    # every layer at least 2 channels wide (a 1-channel tensor has no layout to keep)
    fast = perf.prepare(_model(F_dim=16, L_dim=16, N_dim=8, D_dim=16, **options), perf.FastOptions(channels_last=True))
    bad, handles = _conv_input_layouts(fast)
    frames, poses = _data()
    fast(frames, poses, torch.tensor(MASKS[tf]), anchor=frames[:, 2])
    assert bad == []
    with torch.inference_mode():
        fast.rollout(frames[:, 0], poses, z_mode="prior")
        fast.rollout(frames[:, 0], poses, z=torch.randn(B, T - 1, fast.cfg.N_dim, H, W))
    assert bad == []
    for h in handles:
        h.remove()


def test_time_helpers_keep_values_and_layout() -> None:
    from posecast.models.cvae import _bt, _steps

    x = torch.randn(2, 5, 4, 3, 6)
    y = perf.to_channels_last(x)
    assert torch.equal(y, x) and y.stride(2) == 1
    for idx in ([0, 1, 2], [1, 3, 4], [2]):
        for src in (x, y):
            got = _bt(_steps(src, idx))
            torch.testing.assert_close(got, x[:, idx].flatten(0, 1), rtol=0, atol=0)
            assert (got.stride(1) == 1) == (src is y)  # channels innermost, as in the source
    assert _bt(y[:, :, :1]).shape == (10, 1, 3, 6)  # one channel: no layout to keep


def test_channels_last_and_inputs_in_nhwc_rollout_matches_plain() -> None:
    plain = _model().eval()
    fast = perf.prepare(copy.deepcopy(plain), perf.FastOptions(channels_last=True))
    frames, poses = _data(t=8)
    ref = predict(plain, frames[:, 0], poses, seed=3)
    out = predict(fast, frames[:, 0], poses, seed=3)
    out_nhwc = predict(fast, perf.to_channels_last(frames[:, 0]), perf.to_channels_last(poses), seed=3)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_nhwc, ref, atol=1e-5, rtol=0)


def test_prepare_keeps_parameters_names_and_dtypes() -> None:
    plain = _model()
    fast = perf.prepare(copy.deepcopy(plain), perf.FastOptions(precision="fp32", channels_last=True))
    sd_p, sd_f = plain.state_dict(), fast.state_dict()
    assert sd_p.keys() == sd_f.keys()
    for k in sd_p:
        assert sd_f[k].dtype == torch.float32
        assert torch.equal(sd_f[k], sd_p[k]), k
    # a channels_last model loads a plain checkpoint and the reverse
    _model(seed=1).load_state_dict(sd_f)
    fast.load_state_dict(sd_p)


needs_bf16 = pytest.mark.skipif(not perf.bf16_supported(), reason="no native bf16 on this CPU")


@needs_bf16
def test_bf16_training_step_is_close_to_fp32() -> None:
    model = perf.prepare(_model(), perf.FastOptions(channels_last=True))
    frames, poses = _data()
    mask = torch.ones(T - 1, dtype=torch.bool)
    loss32, pred32, grad32 = _train_outputs(model, frames, poses, mask, "fp32")
    loss16, pred16, grad16 = _train_outputs(model, frames, poses, mask, "bf16")
    assert psnr(pred16.float(), pred32).min() > 35  # dB between the two predictions
    assert abs(float(loss16["mse"]) - float(loss32["mse"])) < 0.02 * float(loss32["mse"]) + 1e-4
    cos = torch.nn.functional.cosine_similarity(
        torch.cat([g.flatten() for g in grad16.values()]), torch.cat([g.flatten() for g in grad32.values()]), dim=0)
    assert cos > 0.98


@needs_bf16
def test_bf16_rollout_psnr_is_within_bounds_of_fp32(trained_run) -> None:
    """The tiny model trained on the synthetic dancer: bf16 rollout PSNR against fp32's."""
    trainer, _, _ = trained_run
    model = copy.deepcopy(trainer.model)
    perf.prepare(model, perf.FastOptions(channels_last=True))
    seqs, L = trainer.val_seqs, trainer.val_len
    ev32 = evaluate_sequences(model, seqs, length=L, z_mode="zero", with_ssim=False, precision="fp32")
    ev16 = evaluate_sequences(model, seqs, length=L, z_mode="zero", with_ssim=False, precision="bf16")
    assert abs(ev16.mean_psnr - ev32.mean_psnr) < 0.5
    assert psnr(ev16.pred[0, :, 1:], ev32.pred[0, :, 1:]).mean() > 30  # bf16 vs fp32 frames
    # sampled z (prior): the same seed, PSNR within a looser bound
    s32 = evaluate_sequences(model, seqs, length=L, z_mode="prior", with_ssim=False, precision="fp32")
    s16 = evaluate_sequences(model, seqs, length=L, z_mode="prior", with_ssim=False, precision="bf16")
    assert abs(s16.mean_psnr - s32.mean_psnr) < 1.0


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("POSECAST_SKIP_COMPILE") == "1", reason="POSECAST_SKIP_COMPILE=1")
def test_compiled_submodules_match_plain_in_inference() -> None:
    """torch.compile of each submodule (perf.compile_submodules): the same rollout in fp32."""
    try:
        import torch._inductor  # noqa: F401
    except Exception:  # pragma: no cover - a build without inductor
        pytest.skip("torch.compile is not available")
    plain = _model().eval()
    fast = perf.prepare(copy.deepcopy(plain), perf.FastOptions(compile=True))
    frames, poses = _data(t=4)
    z = torch.randn(B, 3, plain.cfg.N_dim, H, W, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = plain.rollout(frames[:, 0], poses, z=z)
        try:
            out = fast.rollout(frames[:, 0], poses, z=z)
        except Exception as exc:  # no C++ compiler for inductor on this machine
            if "compiler" in str(exc).lower() or "InductorError" in type(exc).__name__:
                pytest.skip(f"inductor cannot compile here: {type(exc).__name__}")
            raise
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert plain.state_dict().keys() == fast.state_dict().keys()


def test_tune_allocator_and_threads() -> None:
    if not os.path.exists("/proc/self/status"):
        pytest.skip("Linux only")
    assert tune_allocator() in (True, False)
    assert tune_allocator() == tune_allocator()  # idempotent
    before = torch.get_num_threads()
    try:
        assert perf.set_threads(1) == 1
        assert 1 <= perf.auto_threads() <= perf.physical_cores()
        assert perf.auto_threads(load=0.0) == perf.physical_cores()
        assert perf.auto_threads(load=100.0) == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("mode", ["relu", "lab", "bounded"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gated_ffn_split_convolutions_equal_conv_then_chunk(mode: str, channels_last: bool) -> None:
    """GatedConvFFN (and the lab template's LabConvFFN) runs value and gate as two convolutions with
    the halves of conv_in's weight; the result (and the gradients) equal conv_in followed by chunk,
    the written-out formula."""
    from torch.nn import functional as F

    from posecast.models.blocks import GatedConvFFN
    from posecast.models.lab import LabConvFFN

    torch.manual_seed(0)
    ffn = LabConvFFN(8) if mode == "lab" else GatedConvFFN(8, gate="sigmoid" if mode == "bounded" else "relu")
    x = torch.randn(2, 8, 5, 7)
    if channels_last:
        ffn = ffn.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def reference(x: torch.Tensor) -> torch.Tensor:
        h = ffn.conv_in(x)
        if mode == "bounded":
            v, g = h.chunk(2, dim=1)
            return x + ffn.conv_out(F.leaky_relu(v, ffn.act.negative_slope) * torch.sigmoid(g))
        if mode == "lab":
            v, g = h.chunk(2, dim=1)
            return x + ffn.conv_out(v * F.leaky_relu(g, ffn.act.negative_slope))
        v, g = F.leaky_relu(h, ffn.act.negative_slope).chunk(2, dim=1)
        return x + ffn.conv_out(v * F.relu(g))

    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = ffn(xa), reference(xb)
    torch.testing.assert_close(ya, yb, atol=1e-6, rtol=1e-5)
    ya.square().sum().backward()
    ga = [p.grad.clone() for p in ffn.parameters()]
    ffn.zero_grad()
    yb.square().sum().backward()
    for a, b in zip(ga, [p.grad for p in ffn.parameters()]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-4)


def test_auto_precision_is_bf16_only_where_native(monkeypatch) -> None:
    """precision auto (the lab and small presets): bf16 autocast on a CPU with native bf16, fp32
    without; fp32 and bf16 are kept as asked."""
    from posecast.perf import autocast

    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(perf, "bf16_supported", lambda native=native: native)
        assert perf.resolve_precision("auto") == expected
        assert perf.resolve_precision("auto", torch.device("cpu")) == expected
        assert perf.resolve_precision("fp32") == "fp32" and perf.resolve_precision("bf16") == "bf16"
        with autocast("auto"):
            x = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
        assert x.dtype == (torch.bfloat16 if native else torch.float32)
    assert perf.resolve_precision("auto", "meta") == "fp32"


def test_auto_precision_on_cuda_judges_the_device_asked_for(monkeypatch) -> None:
    """On CUDA, auto is bf16 from compute capability 8.0 on, for the device named (a V100 beside
    an A100: fp32 on the one, bf16 on the other), and fp32 without CUDA."""
    caps = {0: (7, 0), 1: (8, 0)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda d=None: caps[torch.device(d).index if torch.device(d).index is not None else 0])
    assert perf.resolve_precision("auto", "cuda:0") == "fp32"
    assert perf.resolve_precision("auto", "cuda:1") == "bf16"
    assert perf.resolve_precision("auto", torch.device("cuda", 1)) == "bf16"
    assert perf.resolve_precision("fp32", "cuda:1") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert perf.resolve_precision("auto", "cuda:1") == "fp32"


def test_cpu_isa_reads_the_flags_that_matter() -> None:
    """AVX2-only, AVX-512 with BF16, and AMX flag sets; the summary names what is there and not."""
    avx2 = frozenset({"fma", "avx", "avx2"})
    assert perf.cpu_isa(avx2) == {"AVX2": True, "AVX-512": False, "AVX512-BF16": False, "AMX-BF16": False}
    bf16 = avx2 | {"avx512f", "avx512bw", "avx512_bf16"}
    assert perf.cpu_isa(bf16) == {"AVX2": True, "AVX-512": True, "AVX512-BF16": True, "AMX-BF16": False}
    amx = bf16 | {"amx_bf16", "amx_tile"}
    assert all(perf.cpu_isa(amx).values())
    line = perf.cpu_summary(avx2)
    assert "(AVX2; no AVX-512, no AVX512-BF16, no AMX-BF16;" in line and perf.cpu_name() in line
    assert "; torch kernels: " in line
    assert [perf.cpu_kind(f) for f in (avx2, bf16, amx, frozenset())] == ["avx2", "avx512bf16", "amxbf16", "other"]
    # this machine: the flags come from /proc/cpuinfo and agree with what torch's oneDNN reports
    if perf.cpu_flags():
        assert perf.cpu_isa()["AVX512-BF16"] or perf.cpu_isa()["AMX-BF16"] or not perf.bf16_supported()
