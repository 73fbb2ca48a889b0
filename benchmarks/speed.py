"""Speed benchmark: posecast's training step and rollout against the lab template's way.

    python benchmarks/speed.py                    # lab and small presets (about 4-5 minutes)
    python benchmarks/speed.py --json speed.json  # the same figures as JSON too
    python benchmarks/speed.py --tiny             # the tiny preset, seconds (what CI runs)
    python benchmarks/speed.py --ablation-only    # each speed option on its own (about 10 minutes)
    python benchmarks/speed.py --presets best   # a recipe (or a YAML file), with its own batch of clips

The reference is the same PoseCVAE (the same weights, its submodules called directly) run the
way the lab template runs it: fp32, NCHW, the batch of 4 clips of 16 frames (a YAML recipe: its
data.batch_size clips of data.train_vi_len frames) advancing one time step at a time with every
module called at every step (frame encoder on the previous frame, unless the model reads none, and
on the current frame, pose encoder, posterior, reparameterisation, fusion, generator), the per-step
losses summed and one backward at the end (``posecast.models.reference``); its rollout is one
sequence frame by frame under torch.no_grad with the pose encoded at each step. posecast's path is
the project's own code: ``posecast.training.step.train_step`` (the Trainer's step), and
``posecast.rollout.predict`` for 5 sequences at once, with the speed options of ``posecast.perf``
(see --help). The training steps of each run in a fresh process of their own (one after the
other), both with the same threads and the same (tuned) allocator: the ratio is the execution
strategy's.

Every figure is the best of ``--reps`` timed runs after a warm-up at the full size (the machines
are shared; the 1-minute load average is printed with the table, and ``--threads auto`` takes one
thread per CPU the load leaves idle). FLOPs are counted with torch's FlopCounterMode on meta
tensors (with a fixed count for grouped convolutions' backward). The GEMM peak of each precision
is measured in the same run, before each preset and at the end, the best kept: the best of
torch.mm, a 1x1 convolution and a 3x3 convolution. The training step's and the rollout's memory
are measured in fresh processes: peak RSS (VmHWM), and for the rollout the RSS at three steps,
so that its growth beyond the output frames shows (a model that reads no previous frame decodes
64 steps at once: the RSS is then read at the first chunk boundary past each step). The table goes to stdout and to ``--out``
(default benchmarks/results/speed.md).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from posecast import config as cfgmod
from posecast import perf
from posecast.rollout import predict
from posecast.models import Objective, PoseCVAE
from posecast.models import unet
from posecast.models.pose_context import stack_pose_context
from posecast.models.reference import reference_loss
from posecast.perf import to_float
from posecast.runtime import malloc_stats, tune_allocator
from posecast.data.sampling import Batch
from posecast.training.step import loss_step, make_optimizer, train_step

ROOT = Path(__file__).resolve().parents[1]
TRAIN_B, TRAIN_T = 4, 16  # the training batch: 4 clips of 16 frames
ROLL_SEQS, ROLL_LEN = 5, 630  # posecast's rollout: 5 sequences of 630 frames at once
TINY = dict(train_b=2, train_t=4, roll_seqs=2, roll_len=12, roll_short=4, roll_warm=4, ref_frames=6, reps=1,
            peak_n=512)


# -- inputs --------------------------------------------------------------------------------
# the presets timed at the batch (--train-b x --train-t); any other recipe at its own
SIZE_PRESETS = ("lab", "small", "tiny")


def load_config(name: str) -> cfgmod.Config:
    """A recipe's name or a YAML config file (``--presets small,best``: the quality recipe)."""
    return cfgmod.load(name) if name.endswith((".yaml", ".yml")) else cfgmod.preset(name)


def recipe_batch(name: str, args: argparse.Namespace) -> tuple[int, int]:
    """Clips x frames of a training step: a recipe's own (data.batch_size, data.train_vi_len: a YAML
    file, or a shipped recipe other than SIZE_PRESETS), else --train-b x --train-t."""
    if name not in SIZE_PRESETS:
        data = load_config(name).data
        return data.batch_size, data.train_vi_len
    return args.train_b, args.train_t


def make_clips(cfg: cfgmod.Config, B: int, T: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames and poses [B, T, 3, H, W] (random: speed does not depend on the pixels)."""
    g = torch.Generator().manual_seed(seed)
    shape = (B, T, 3, cfg.data.frame_H, cfg.data.frame_W)
    return (torch.randint(0, 256, shape, generator=g, dtype=torch.uint8),
            torch.randint(0, 256, shape, generator=g, dtype=torch.uint8))


def build_model(cfg: cfgmod.Config, seed: int = 0) -> PoseCVAE:
    torch.manual_seed(seed)
    return PoseCVAE(cfg.model)


# -- the reference: the lab template's way (the loss: posecast.models.reference) ----------------
def _mask(frames: torch.Tensor, teacher_forcing: bool) -> torch.Tensor:
    return torch.full((frames.shape[1] - 1,), teacher_forcing, dtype=torch.bool)


def reference_train_step(model, opt, frames, poses, teacher_forcing: bool, cfg, beta: float = 1.0) -> None:
    """posecast.models.reference's loss, then backward, clip and step as the Trainer's step does."""
    opt.zero_grad(set_to_none=True)
    out = reference_loss(model, Batch(frames, poses), _mask(frames, teacher_forcing), beta,
                         kl_reduction=cfg.schedule.kl_reduction, recon=cfg.schedule.recon)
    out.loss.backward()
    if cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
    opt.step()


@torch.no_grad()
def reference_rollout(model: PoseCVAE, first_frame: torch.Tensor, poses: torch.Tensor, *,
                      z: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The lab template's rollout: one frame at a time, the pose encoded at every step, frames
    gathered in a list and stacked at the end. Returns [B, T, 3, H, W] with frame 0 given."""
    x0, p = to_float(first_frame), stack_pose_context(to_float(poses), model.cfg.pose_context)  # with neighbours
    first = model.frame_encoder(x0) if model.cfg.first_frame_cond else None
    first_pose = model.pose_encoder(p[:, 0]) if model.cfg.first_pose_cond else None
    frames, prev = [x0], x0
    for t in range(1, p.shape[1]):
        h_prev = model.frame_encoder(prev) if model.reads_prev else None
        pose_f = model.pose_encoder(p[:, t])
        if z is not None:
            z_t = z[:, t - 1]
        else:
            pri = model.prior(h_prev, pose_f)
            if pri is None:
                z_t = torch.randn((x0.shape[0], model.cfg.N_dim, *pose_f.shape[-2:]), generator=generator)
            else:
                z_t = pri.mu + torch.randn(pri.mu.shape, generator=generator) * torch.exp(0.5 * pri.logvar)
        prev = model.decode(prev, h_prev, pose_f, z_t, first, x0, first_pose)
        frames.append(prev)
    return torch.stack(frames, 1)


# -- posecast's path ------------------------------------------------------------------------
def fast_train_step(model, opt, frames, poses, teacher_forcing: bool, cfg, beta: float = 1.0) -> None:
    """The Trainer's step: train_step (batched forward, autocast per runtime.precision, optimiser)."""
    objective = Objective(model, cfg.schedule.kl_reduction, cfg.schedule.recon)
    train_step(objective, opt, Batch(frames, poses), _mask(frames, teacher_forcing), beta,
               precision=cfg.runtime.precision, grad_clip=cfg.optim.grad_clip)


def fast_rollout(model: PoseCVAE, first: torch.Tensor, poses: torch.Tensor, precision: str) -> torch.Tensor:
    return predict(model, first, poses, z_mode="prior", seed=0, precision=precision)


# -- measuring ------------------------------------------------------------------------------
def best_time(fn: Callable[[], Any], reps: int) -> float:
    best = float("inf")
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_peak(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> dict[str, float]:
    """GFLOP/s of GEMMs in ``dtype``, the best of ``reps`` each: torch.mm of n x n and n/2 x n/2
    matrices (MKL for fp32, oneDNN for bf16), a 512 x 512 x 4096 GEMM as a 1x1 convolution and a
    256-channel 3x3 convolution (an implicit GEMM), both channels_last (oneDNN). ``peak`` is the
    best of them: on AVX-512 CPUs oneDNN's convolution kernels beat MKL's fp32 sgemm by 2x."""
    res: dict[str, float] = {}
    with torch.inference_mode():
        for m in (n // 2, n):
            a, b = torch.randn(m, m, dtype=dtype), torch.randn(m, m, dtype=dtype)
            torch.mm(a, b)
            res["mm"] = max(res.get("mm", 0.0), 2.0 * m ** 3 / best_time(lambda: torch.mm(a, b), reps) / 1e9)
        cl = torch.channels_last
        x = torch.randn(1, 512, 64, 64, dtype=dtype).contiguous(memory_format=cl)
        w = torch.randn(512, 512, 1, 1, dtype=dtype).contiguous(memory_format=cl)
        F.conv2d(x, w)
        res["conv1x1"] = 2.0 * 512 * 512 * 4096 / best_time(lambda: F.conv2d(x, w), reps) / 1e9
        x = torch.randn(4, 256, 32, 64, dtype=dtype).contiguous(memory_format=cl)
        w = torch.randn(256, 256, 3, 3, dtype=dtype).contiguous(memory_format=cl)
        F.conv2d(x, w, padding=1)
        res["conv3x3"] = 2.0 * 256 * 256 * 9 * 4 * 32 * 64 / best_time(lambda: F.conv2d(x, w, padding=1), reps) / 1e9
    res["peak"] = max(res.values())
    return res


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """convolution_backward: grad_input and grad_weight each cost the forward's FLOPs.

    torch's own formula (2.13) counts grad_weight as if the convolution were dense, which
    counts a depthwise convolution's backward C times too high (65x for 64 channels)."""
    fwd = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=bool(transposed))
    return fwd * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop}) as fc:
        fn()
    return fc.get_total_flops()


def flops_per_frame(model: PoseCVAE, cfg: cfgmod.Config, T: int) -> dict[str, float]:
    """GFLOP per predicted frame, counted on a meta copy of the model (nothing is computed).

    FLOPs scale with the batch, so one clip is counted. The reference and the rollout do the
    same work at every step, so two steps of them are counted; posecast's batched training
    step encodes T frames for T-1 predictions, so it is counted at the benchmark's T."""
    meta = copy.deepcopy(model).to("meta")
    H, W = cfg.data.frame_H, cfg.data.frame_W
    frames = torch.zeros(1, T, 3, H, W, device="meta")
    poses = torch.zeros(1, T, 3, H, W, device="meta")
    z = torch.zeros(1, 2, cfg.model.N_dim, H, W, device="meta")

    objective, kl = Objective(meta, cfg.schedule.kl_reduction, cfg.schedule.recon), cfg.schedule.kl_reduction

    def train_fast():
        loss_step(objective, Batch(frames, poses), None, 1.0, precision=cfg.runtime.precision).loss.backward()

    def train_ref():
        reference_loss(meta, Batch(frames[:, :3], poses[:, :3]), None, 1.0, kl_reduction=kl, recon=cfg.schedule.recon).loss.backward()

    def fwd_ref():
        with torch.no_grad():
            reference_loss(meta, Batch(frames[:, :3], poses[:, :3]), None, 1.0, kl_reduction=kl, recon=cfg.schedule.recon)

    def fwd_fast():
        with torch.no_grad():
            loss_step(objective, Batch(frames, poses), None, 1.0, precision=cfg.runtime.precision)

    def roll():
        with torch.no_grad():
            meta.rollout(frames[:, 0], poses[:, :3], z=z)

    g = 1e9
    return {"forward_lab_way": count_flops(fwd_ref) / 2 / g, "forward_posecast": count_flops(fwd_fast) / (T - 1) / g,
            "train_posecast": count_flops(train_fast) / (T - 1) / g,
            "train_reference": count_flops(train_ref) / 2 / g, "rollout": count_flops(roll) / 2 / g}


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def vm_hwm_mb() -> float:
    """Peak resident memory of this process (VmHWM), MiB."""
    return _status_mb("VmHWM")


def vm_rss_mb() -> float:
    """Resident memory of this process now (VmRSS), MiB."""
    return _status_mb("VmRSS")


def load1() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


# -- the fresh-process measurements -------------------------------------------------------------
def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh process: a training step or a rollout with posecast's path; peak memory."""
    cfg = cfgmod.override(load_config(spec["preset"]), precision=spec["precision"])
    opts = perf.FastOptions(**spec["opts"])
    if opts.allocator:
        tune_allocator()  # before the first big allocation
    if os.environ.get("POSECAST_BENCH_ONEDNN") == "0":  # ATen's own convolution kernels instead of oneDNN's
        torch.backends.mkldnn.enabled = False
    if os.environ.get("POSECAST_BENCH_GN") == "torch":  # torch's GroupNorm kernel in the input's precision
        unet.GroupNorm.forward = torch.nn.GroupNorm.forward
    if spec.get("freeze"):  # inductor folds the weights in as constants: inference only
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    if opts.compile:  # one graph per module and input shape: more than dynamo's default 8
        torch._dynamo.config.recompile_limit = 64
    if spec.get("who") == "ref":  # the same weights (the same seed), plain: fp32, NCHW
        perf.set_threads(opts.threads)
        model = build_model(cfg)
    else:
        model = perf.prepare(build_model(cfg), opts)
    res: dict[str, Any] = {"rss_start_mb": vm_hwm_mb(), "mkldnn_enabled": torch.backends.mkldnn.enabled}
    if spec["what"] == "ablation":  # a TF training step and a short rollout with these options
        if not spec.get("rollout_only"):
            frames, poses = make_clips(cfg, spec["B"], spec["T"])
            opt = make_optimizer(model, cfg.optim)
            t0 = time.perf_counter()
            fast_train_step(model, opt, frames, poses, True, cfg)  # warm-up (and compilation)
            res["first_step_s"] = time.perf_counter() - t0
            fast_train_step(model, opt, frames, poses, True, cfg)  # the heap's final layout
            m0 = malloc_stats()
            res["step_s"] = best_time(lambda: fast_train_step(model, opt, frames, poses, True, cfg), spec["reps"])
            m1 = malloc_stats()
            res["minflt_per_step"] = (m1["minflt"] - m0["minflt"]) / spec["reps"]
            res["sys_s_per_step"] = (m1["stime"] - m0["stime"]) / spec["reps"]
            res["train_fps"] = spec["B"] * (spec["T"] - 1) / res["step_s"]
        rp = make_clips(cfg, spec["roll_b"], spec["roll_t"], seed=1)[1]
        t0 = time.perf_counter()
        fast_rollout(model, rp[:, 0], rp[:, :8], opts.precision)  # warm-up (and compilation)
        res["rollout_first_s"] = time.perf_counter() - t0
        res["rollout_s"] = best_time(lambda: fast_rollout(model, rp[:, 0], rp, opts.precision), spec["reps"])
        res["rollout_fps"] = spec["roll_b"] * (spec["roll_t"] - 1) / res["rollout_s"]
    elif spec["what"] == "train":  # the reference's or posecast's step, TF on and off, best of reps
        frames, poses = make_clips(cfg, spec["B"], spec["T"])
        opt = make_optimizer(model, cfg.optim)
        step = reference_train_step if spec["who"] == "ref" else fast_train_step
        # warm-ups at the full size: kernels, the optimiser's state, the heap's final layout
        # (two rounds: the heap stops growing, and page-faulting, only in the third step or so)
        for _ in range(2):
            for tf in (False, True):
                step(model, opt, frames, poses, tf, cfg)
        m0 = malloc_stats()
        for _ in range(spec["reps"]):
            for tf, key in ((True, "tf_s"), (False, "notf_s")):
                t = best_time(lambda: step(model, opt, frames, poses, tf, cfg), 1)
                res[key] = min(res.get(key, float("inf")), t)
        m1 = malloc_stats()
        n = 2 * spec["reps"]
        res["minflt_per_step"] = (m1["minflt"] - m0["minflt"]) / n
        res["sys_s_per_step"] = (m1["stime"] - m0["stime"]) / n
        res["user_s_per_step"] = (m1["utime"] - m0["utime"]) / n
        res["rss_mb"] = vm_hwm_mb()
    else:  # rollout: a warm-up, then the full length, timed, with the RSS read at two steps
        H, W = cfg.data.frame_H, cfg.data.frame_W
        first, poses = make_clips(cfg, spec["B"], 1)[0][:, 0], make_clips(cfg, spec["B"], spec["T"], seed=1)[1]
        fast_rollout(model, first, poses[:, : spec["warm"]], opts.precision)  # oneDNN kernels are made
        marks = {spec["first_read"]: "rss_first_mb", spec["short"]: "rss_short_mb", spec["T"] - 1: "rss_end_mb"}
        steps = [0]

        def sample(_module, _inputs, output):  # after the generator: the RSS once the rollout passes a mark
            before = steps[0]
            steps[0] += output.shape[0] // spec["B"]  # one step per call, or a chunk of steps decoded at once
            for mark, key in marks.items():
                if before < mark <= steps[0]:
                    res[key] = vm_rss_mb()
                    res[key.replace("_mb", "_step")] = steps[0]  # the step it was read at

        hook = model.generator.register_forward_hook(sample)
        t0 = time.perf_counter()
        out = fast_rollout(model, first, poses, opts.precision)
        res["rollout_s"] = time.perf_counter() - t0
        hook.remove()
        res["rss_mb"] = vm_hwm_mb()
        res["frames"] = spec["B"] * (spec["T"] - 1)
        # between the two reads, the only memory that must grow: the output frames written
        res["out_growth_mb"] = spec["B"] * 3 * H * W * 4 * (spec["T"] - 1 - res["rss_short_step"]) / 2**20
        assert out.shape[1] == spec["T"]
    res["load1"] = load1()
    return res


def run_worker(spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec['what']} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- one preset -------------------------------------------------------------------------------
def bench_preset(name: str, args: argparse.Namespace, opts: perf.FastOptions, log: Callable[[str], None]) -> dict:
    cfg = cfgmod.override(load_config(name), precision=opts.precision)
    ref_cfg = cfgmod.override(load_config(name), precision="fp32")
    B, T = recipe_batch(name, args)
    S = B * (T - 1)
    ref_model = build_model(ref_cfg)
    res: dict[str, Any] = {"preset": name, "train_batch": [B, T], "load1_start": load1()}

    fl = flops_per_frame(ref_model, ref_cfg, T)
    res.update(gflop_per_frame=fl["forward_lab_way"], fwd_gflop_per_frame=fl["forward_posecast"],
               train_gflop_per_frame=fl["train_posecast"],
               ref_train_gflop_per_frame=fl["train_reference"], rollout_gflop_per_frame=fl["rollout"])

    # training: the reference and posecast each in a fresh process (in one process, the two
    # workloads' blocks fragment the heap and each step of one faults in new pages after the other)
    spec = {"preset": name, "opts": vars(opts), "B": B, "T": T, "reps": args.reps, "what": "train"}
    ref_tr = run_worker({**spec, "who": "ref", "precision": "fp32"})
    tr = run_worker({**spec, "who": "fast", "precision": opts.precision})
    times = {"ref_tf": ref_tr["tf_s"], "ref_notf": ref_tr["notf_s"], "fast_tf": tr["tf_s"], "fast_notf": tr["notf_s"]}
    for key in ("tf", "notf"):
        res[f"ref_train_{key}_fps"] = S / times[f"ref_{key}"]
        res[f"train_{key}_fps"] = S / times[f"fast_{key}"]
        res[f"train_{key}_speedup"] = res[f"train_{key}_fps"] / res[f"ref_train_{key}_fps"]
    res.update(train_rss_mb=tr["rss_mb"], train_minflt_per_step=tr["minflt_per_step"],
               train_sys_s_per_step=tr["sys_s_per_step"], train_user_s_per_step=tr["user_s_per_step"],
               ref_train_rss_mb=ref_tr["rss_mb"], train_load1=[ref_tr["load1"], tr["load1"]])
    # data: the Trainer's batch assembly (a uint8 gather from the decoded sequence) per step
    seq = torch.randint(0, 256, (1887, 3, cfg.data.frame_H, cfg.data.frame_W), dtype=torch.uint8)
    idx = torch.randint(0, len(seq) - T, (B,))[:, None] + torch.arange(T)
    res["data_ms_per_step"] = 1e3 * best_time(lambda: (seq[idx], seq[idx]), 20)
    res["fast_step_ms"] = 1e3 * times["fast_tf"]
    log(f"  {name}: training ref {res['ref_train_tf_fps']:.2f}/{res['ref_train_notf_fps']:.2f} fps, "
        f"posecast {res['train_tf_fps']:.2f}/{res['train_notf_fps']:.2f} fps (TF on/off)  load "
        f"{ref_tr['load1']:.2f}/{tr['load1']:.2f}")

    # reference rollout: one sequence, frame by frame, the first ref_frames frames of it
    rf, rp = make_clips(cfg, 1, args.ref_frames + 1, seed=1)
    gen = torch.Generator().manual_seed(0)
    reference_rollout(ref_model, rf[:, 0], rp[:, :3], generator=gen)  # warm-up
    t = best_time(lambda: reference_rollout(ref_model, rf[:, 0], rp, generator=gen), args.reps)
    res["ref_rollout_fps"] = args.ref_frames / t
    res["ref_rollout_frames_timed"] = args.ref_frames
    log(f"  {name}: reference rollout {res['ref_rollout_fps']:.2f} fps  load {load1():.2f}")

    spec = {"preset": name, "precision": opts.precision, "opts": vars(opts)}
    roll = run_worker({**spec, "what": "rollout", "B": args.roll_seqs, "T": args.roll_len,
                       "short": min(args.roll_short, args.roll_len - 1), "warm": args.roll_warm,
                       "first_read": min(args.roll_short // 2, args.roll_len - 1)})
    res["rollout_fps"] = roll["frames"] / roll["rollout_s"]
    res["rollout_speedup"] = res["rollout_fps"] / res["ref_rollout_fps"]
    res.update(rollout_rss_mb=roll["rss_mb"], rollout_rss_short_mb=roll["rss_short_mb"],
               rollout_rss_first_mb=roll["rss_first_mb"], rollout_first_read=min(args.roll_short // 2, args.roll_len - 1),
               rollout_rss_end_mb=roll["rss_end_mb"], rollout_out_growth_mb=roll["out_growth_mb"],
               rollout_growth_net_mb=roll["rss_end_mb"] - roll["rss_short_mb"] - roll["out_growth_mb"],
               rollout_seqs=args.roll_seqs, rollout_len=args.roll_len, rollout_short_len=args.roll_short)
    log(f"  {name}: posecast rollout {res['rollout_fps']:.2f} fps; RSS {roll['rss_short_mb']:.0f} MiB at step "
        f"{args.roll_short}, {roll['rss_end_mb']:.0f} at step {args.roll_len - 1} (output written between: "
        f"{roll['out_growth_mb']:.0f}), peak {roll['rss_mb']:.0f}  load {roll['load1']:.2f}")
    res["load1_end"] = load1()
    return res


def measure_peaks(peaks: dict[str, dict[str, float]], n: int) -> None:
    """Measure (again) and keep the best GEMM peak per precision."""
    for prec, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if prec == "bf16" and not perf.bf16_supported():
            continue
        now = gemm_peak(dtype, n)
        old = peaks.setdefault(prec, now)
        for k in now:
            old[k] = max(old[k], now[k])


def ablation(presets: list[str], args: argparse.Namespace, threads: int, log: Callable[[str], None]) -> str:
    """Each option on its own, in a fresh process: a TF training step and a rollout of
    ``--roll-seqs`` sequences x 64 frames. The default path is what ``precision: auto`` runs on
    this CPU (bf16 where native, else fp32) + channels_last + the tuned allocator with ``threads``
    threads; each row changes one thing. No bf16 rows on a CPU without native bf16 (emulated there)."""
    other = 2 if threads == 1 else 1
    p = "bf16" if perf.bf16_supported() else "fp32"  # what precision auto runs on this CPU
    base = dict(precision=p, channels_last=True, compile=False, threads=threads, allocator=True)
    tag = lambda opt: f"{opt}, channels_last (default)" if opt == p else f"{opt}, channels_last"  # noqa: E731
    rows: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("fp32, NCHW", {**base, "precision": "fp32", "channels_last": False}, {}),
        (tag("fp32"), {**base, "precision": "fp32"}, {}),
        (f"{p}, channels_last, glibc malloc untuned", {**base, "allocator": False}, {"POSECAST_MALLOC": "default"}),
        (f"{p}, channels_last, oneDNN off (ATen's convolutions)", base, {"POSECAST_BENCH_ONEDNN": "0"}),
        (f"{p}, channels_last, {other} threads", {**base, "threads": other}, {}),
        (f"{p}, channels_last, 2 threads, OMP_WAIT_POLICY=PASSIVE", {**base, "threads": 2},
         {"OMP_WAIT_POLICY": "PASSIVE"}),
    ]
    if perf.bf16_supported():  # emulated bf16 (no AVX512-BF16/AMX) runs many times slower: not timed
        rows[2:2] = [("bf16, NCHW", {**base, "precision": "bf16", "channels_last": False}, {}),
                     (tag("bf16"), {**base, "precision": "bf16"}, {}),
                     ("bf16, channels_last, torch's bf16 GroupNorm (not posecast's fp32 one; model.norm group only)",
                      {**base, "precision": "bf16"}, {"POSECAST_BENCH_GN": "torch"})]
    extra: dict[str, dict[str, Any]] = {}
    if args.compile:
        rows.append((f"{p}, channels_last, torch.compile of each submodule", {**base, "compile": True}, {}))
        label = f"{p}, channels_last, torch.compile with inductor freezing (rollout only: weights become constants)"
        rows.append((label, {**base, "compile": True}, {}))
        extra[label] = {"freeze": True, "rollout_only": True}
    note = [] if perf.bf16_supported() else [
        "", "No bf16 rows: this CPU has no native bf16 (AVX512-BF16 or AMX), so bf16 autocast is emulated "
        "(the small preset's bf16 row, a warm-up, two timed training steps and a 64-frame rollout, had not finished after 3 minutes "
        "on the AVX2-only EPYC; its fp32 rows took about a minute each); precision auto runs fp32 here."]
    lines = [*note, "", f"Options one at a time (fresh process each; training: {args.train_b} clips x {args.train_t} frames "
             f"with teacher forcing; rollout: {args.roll_seqs} sequences x 64 frames; best of {args.reps})", "",
             "| preset | options | training frames/s | first step (s) | page faults / sys s per step | "
             "rollout frames/s | first rollout (s) | load |", "|---|---|---|---|---|---|---|---|"]
    for name in presets:
        for label, o, env in rows:
            B, T = recipe_batch(name, args)
            spec = {"what": "ablation", "preset": name, "precision": o["precision"], "opts": o, "B": B,
                    "T": T, "roll_b": args.roll_seqs, "roll_t": 65, "reps": args.reps,
                    **extra.get(label, {})}
            r = run_worker(spec, env)
            train = (f"{r['train_fps']:.2f} | {r['first_step_s']:.1f} | {r['minflt_per_step']:.0f} / "
                     f"{r['sys_s_per_step']:.2f}") if "train_fps" in r else "- | - | -"
            lines.append(f"| {name} | {label} | {train} | {r['rollout_fps']:.2f} | {r['rollout_first_s']:.1f} | "
                         f"{r['load1']:.2f} |")
            log("  " + lines[-1])
    return "\n".join(lines) + "\n"


# -- table -------------------------------------------------------------------------------------
def table(results: dict[str, dict], meta: dict[str, Any]) -> str:
    prec = meta["precision"]
    pk = meta["peaks"]
    lines = [
        f"posecast speed benchmark, {meta['date']}, `{meta['command']}` ({meta['wall_s']:.0f} s)",
        f"machine: {meta['cpu']}, {meta['threads']} threads ({meta['threads_how']}), torch {meta['torch']}; "
        f"1-min load average {meta['load_start']:.2f} at the start, {meta['load_end']:.2f} at the end",
        f"GEMM peak measured in this run with {meta['threads']} threads (GFLOP/s, the best of torch.mm, a 1x1 conv and a "
        "3x3 conv): " + ", ".join(f"**{p} {v['peak']:.0f}** (mm {v['mm']:.0f}, 1x1 {v['conv1x1']:.0f}, 3x3 "
                                 f"{v['conv3x3']:.0f})" for p, v in pk.items()),
        f"reference: the lab template's way (fp32, NCHW, one time step at a time, every module per step; "
        f"rollout: 1 sequence, frame by frame, no_grad). posecast: {meta['fast_label']}.",
        "",
        "| preset | measure | reference | posecast | posecast / reference |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        B, T = r["train_batch"]
        lines += [
            f"| {name} | model GFLOP per predicted frame: forward / training step (fwd+bwd) / rollout step | "
            f"{r['gflop_per_frame']:.3f} / {r['ref_train_gflop_per_frame']:.3f} / {r['rollout_gflop_per_frame']:.3f} | "
            f"{r['fwd_gflop_per_frame']:.3f} / {r['train_gflop_per_frame']:.3f} / {r['rollout_gflop_per_frame']:.3f} | |",
            f"| {name} | training, {B} clips x {T} frames, teacher forcing on (frames/s) | "
            f"{r['ref_train_tf_fps']:.2f} | {r['train_tf_fps']:.2f} | **{r['train_tf_speedup']:.2f}x** |",
            f"| {name} | training, teacher forcing off (frames/s) | {r['ref_train_notf_fps']:.2f} | "
            f"{r['train_notf_fps']:.2f} | **{r['train_notf_speedup']:.2f}x** |",
            f"| {name} | rollout, {r['rollout_len']} frames (frames/s) | {r['ref_rollout_fps']:.2f} "
            f"(1 sequence; first {r['ref_rollout_frames_timed']} frames timed) | {r['rollout_fps']:.2f} "
            f"({r['rollout_seqs']} sequences at once) | **{r['rollout_speedup']:.2f}x** |",
            f"| {name} | achieved GFLOP/s, training with teacher forcing (fraction of the {prec} GEMM peak) | "
            f"{r['ref_gflops']:.1f} ({r['ref_peak_fraction']:.0%} of fp32) | {r['gflops']:.1f} "
            f"(**{r['peak_fraction']:.0%}**) | |",
            f"| {name} | peak RSS (MiB, fresh process): training step / rollout of {r['rollout_len']} frames | "
            f"{r['ref_train_rss_mb']:.0f} / - | {r['train_rss_mb']:.0f} / {r['rollout_rss_mb']:.0f} | |",
            f"| {name} | rollout RSS (MiB) at step {r['rollout_first_read']} / {r['rollout_short_len']} / "
            f"{r['rollout_len'] - 1}; growth from step {r['rollout_short_len']} to the end beyond the output frames "
            f"written | | {r['rollout_rss_first_mb']:.0f} / {r['rollout_rss_short_mb']:.0f} / "
            f"{r['rollout_rss_end_mb']:.0f}; **{r['rollout_growth_net_mb']:+.0f}** | |",
        ]
    lines.append("")
    lines.append("posecast training step, steady state (fresh process): minor page faults / system CPU s per step: "
                 + ", ".join(f"{n} {r['train_minflt_per_step']:.0f} / {r['train_sys_s_per_step']:.2f} s"
                             for n, r in results.items())
                 + "; batch assembly (the Trainer's uint8 gather) per step: "
                 + ", ".join(f"{n} {r['data_ms_per_step']:.2f} ms of a {r['fast_step_ms']:.0f} ms step"
                             for n, r in results.items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="lab,small",
                    help="comma-separated recipes or YAML configs (e.g. lab,small,best)")
    ap.add_argument("--tiny", action="store_true", help="CI mode: the tiny preset, short clips and rollouts")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--out", default=None, help="table file (default benchmarks/results/speed[_tiny].md)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="posecast's precision (auto: bf16 where the CPU has native bf16)")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--allocator", action=argparse.BooleanOptionalAction, default=True,
                    help="posecast.runtime.tune_allocator (glibc malloc keeps big blocks)")
    ap.add_argument("--threads", default="auto",
                    help="intra-op threads for both: a number, or auto (the CPUs the load average leaves idle)")
    ap.add_argument("--peak-n", type=int, default=2048, help="size of the GEMM of the peak measurement")
    ap.add_argument("--reps", type=int, default=2, help="timed repeats (best kept)")
    ap.add_argument("--train-b", type=int, default=TRAIN_B)
    ap.add_argument("--train-t", type=int, default=TRAIN_T)
    ap.add_argument("--roll-seqs", type=int, default=ROLL_SEQS)
    ap.add_argument("--roll-len", type=int, default=ROLL_LEN)
    ap.add_argument("--roll-short", type=int, default=200,
                    help="the rollout's RSS is read at steps roll_short/2, roll_short and the last one")
    ap.add_argument("--roll-warm", type=int, default=8, help="frames of the warm-up rollout")
    ap.add_argument("--ref-frames", type=int, default=126, help="frames of the reference rollout timed")
    ap.add_argument("--ablation", action="store_true",
                    help="also time each option on its own (fresh processes; adds minutes; --compile adds compile)")
    ap.add_argument("--ablation-only", action="store_true", help="only the options table (prints it)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker is not None:  # a fresh process for one measurement
        spec = json.loads(args.worker)
        print(json.dumps(worker(spec)))
        return {}

    t_start = time.perf_counter()
    if args.tiny:
        args.presets = "tiny"
        for k, v in TINY.items():
            if getattr(args, k) == ap.get_default(k):
                setattr(args, k, v)
    precision = args.precision
    if precision == "auto":
        precision = "bf16" if perf.bf16_supported() else "fp32"
    if args.allocator:
        tune_allocator()  # the reference runs in this process too: it gets the same allocator
    load_start = load1()
    threads = perf.set_threads(args.threads)  # the same for the reference, posecast and the peak
    threads_how = (f"auto: a 1-min load of {load_start:.2f} on {perf.physical_cores()} CPUs"
                   if args.threads == "auto" else "--threads")
    opts = perf.FastOptions(precision=precision, channels_last=args.channels_last, compile=args.compile,
                            threads=threads, allocator=args.allocator)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"speed benchmark: presets {args.presets}, posecast {opts.label()}, {threads} threads, "
        f"load {load_start:.2f}")

    if args.ablation_only:
        cmd = "python benchmarks/speed.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
        text = (f"`{cmd}` ({time.strftime('%Y-%m-%d %H:%M')})\n\nCPU: {perf.cpu_summary()}; torch {torch.__version__}; "
                f"load {load_start:.2f} on {perf.physical_cores()} CPUs; {threads} threads ({threads_how})\n"
                + ablation(args.presets.split(","), args, threads, log))
        print(text)
        if args.out:
            Path(args.out).write_text(text)
        return {}
    peaks: dict[str, dict[str, float]] = {}
    results: dict[str, dict] = {}
    for name in args.presets.split(","):
        measure_peaks(peaks, args.peak_n)
        results[name] = bench_preset(name, args, opts, log)
    measure_peaks(peaks, args.peak_n)
    for r in results.values():
        r["gflops"] = r["train_gflop_per_frame"] * r["train_tf_fps"]
        r["peak_fraction"] = r["gflops"] / peaks[precision]["peak"]
        r["ref_gflops"] = r["ref_train_gflop_per_frame"] * r["ref_train_tf_fps"]
        r["ref_peak_fraction"] = r["ref_gflops"] / peaks["fp32"]["peak"]
        r["precision"] = precision
        r["peak_gflops"] = peaks[precision]["peak"]

    cmd = "python benchmarks/speed.py" + ("".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])))
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": cmd, "cpu": perf.cpu_summary(), "isa": perf.cpu_isa(), "threads": threads,
            "threads_how": threads_how,
            "torch": torch.__version__, "load_start": load_start, "load_end": load1(), "peaks": peaks,
            "precision": precision, "fast_label": _describe(opts),
            "wall_s": time.perf_counter() - t_start}
    text = table(results, meta)
    if args.ablation:
        text += ablation(list(results), args, threads, log)
        meta["wall_s"] = time.perf_counter() - t_start
    print(text)
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / ("speed_tiny.md" if args.tiny else "speed.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if args.json:
        payload = {name: {**r, "meta": {k: v for k, v in meta.items()}} for name, r in results.items()}
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return results


def _describe(opts: perf.FastOptions) -> str:
    parts = ["batched teacher-forced forward (PoseCVAE.forward) / all sequences together (predict)",
             f"{opts.precision}" + (" autocast" if opts.precision == "bf16" else "")]
    if opts.channels_last:
        parts.append("channels_last")
    if opts.compile:
        parts.append("torch.compile")
    if opts.allocator:
        parts.append("tuned glibc malloc")
    return ", ".join(parts)



if __name__ == "__main__":
    main()
