"""Where posecast's time goes: every aten op of a teacher-forced training step and of a rollout,
timed one by one, with the FLOPs and GFLOP/s of each convolution.

    python benchmarks/op_profile.py --preset lab --threads 1

It runs posecast's path as benchmarks/speed.py does (bf16 autocast, channels_last, tuned malloc;
the same clip and rollout sizes), after warm-up steps, and times each op under a
TorchDispatchMode (ops run one after another on CPU, so the sum of op times is the step's time
less Python overhead). torch.profiler's self-CPU times were not used: on bf16 elementwise ops
they disagreed with the wall clock by up to 30x here. Prints two tables per workload: time by
op, and the convolutions by shape with their share of the GEMM peak measured in the same run.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (benchmarks/speed.py: the same inputs, steps and peak measurement)

from posecast import config as cfgmod  # noqa: E402
from posecast import perf  # noqa: E402
from posecast.models import unet  # noqa: E402
from posecast.cli.common import threads_arg  # noqa: E402  (the CLI's --threads parser: a clear message)
from posecast.runtime import malloc_stats  # noqa: E402
from posecast.training.step import make_optimizer  # noqa: E402


def conv_args(func: Any, args: tuple, kwargs: dict | None) -> dict[str, Any]:
    """The arguments of a convolution op by name (aten.convolution, aten.conv2d and
    aten.convolution_backward differ in order and defaults), groups defaulting to 1."""
    named = {a.name: (a.default_value if a.has_default_value() else None) for a in func._schema.arguments}
    named.update(zip([a.name for a in func._schema.arguments], args))
    named.update(kwargs or {})
    named["groups"] = named.get("groups") or 1
    return named


def conv_flops(func: Any, args: tuple, out: Any, kwargs: dict | None = None) -> float:
    """FLOPs of a convolution op (forward: 2*out*in/groups*kh*kw; backward: that per gradient asked)."""
    a = conv_args(func, args, kwargs)
    w, groups = a["weight"], a["groups"]
    if "grad_output" in a:
        per = 2 * a["grad_output"].numel() * (a["input"].shape[1] // groups) * w.shape[2] * w.shape[3]
        mask = a["output_mask"]
        return float(per * (int(mask[0]) + int(mask[1])))
    return float(2 * out.numel() * (a["input"].shape[1] // groups) * w.shape[2] * w.shape[3])


class OpTimer(TorchDispatchMode):
    """Wall time and count per op; FLOPs and time per convolution shape."""

    def __init__(self) -> None:
        super().__init__()
        self.time: dict[str, float] = collections.defaultdict(float)
        self.count: collections.Counter = collections.Counter()
        self.conv: dict[tuple, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
        self.faults = 0  # minor page faults during the timed step

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        t0 = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        dt = time.perf_counter() - t0
        name = str(func).split(".")[1] if str(func).startswith("aten.") else str(func)
        self.time[name] += dt
        self.count[name] += 1
        if "conv" in name:
            a = conv_args(func, args, kwargs)
            x, w = a["input"], a["weight"]
            kind = "bwd" if "grad_output" in a else "fwd"
            if kind == "bwd" and not a["output_mask"][0]:
                kind = "bwd (weights only)"
            key = (kind, f"{x.shape[1]}->{w.shape[0]}", f"{w.shape[2]}x{w.shape[3]}",
                   "depthwise" if a["groups"] > 1 else "", x.shape[0])
            row = self.conv[key]
            row[0] += dt
            row[1] += conv_flops(func, args, out, kwargs)
            row[2] += 1
        return out


def profile(fn: Callable[[], Any], warm: int) -> tuple[float, OpTimer]:
    for _ in range(warm):
        fn()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    # Under the timer, tensors live a little longer (the mode holds each op's arguments), and a step
    # can grow the heap and page-fault a fresh ~90 MiB block in one op (seen: a 137 ms
    # leaky_relu_backward); of three timed steps, the one with the fewest page faults is kept.
    best: tuple[int, OpTimer] | None = None
    for _ in range(3):
        timer = OpTimer()
        faults = malloc_stats()["minflt"]
        with timer:
            fn()
        faults = malloc_stats()["minflt"] - faults
        if best is None or faults < best[0]:
            best = (faults, timer)
    best[1].faults = best[0]
    return wall, best[1]


def report(title: str, wall: float, timer: OpTimer, peak: float, top: int) -> str:
    total = sum(timer.time.values())
    conv_t = sum(r[0] for r in timer.conv.values())
    conv_f = sum(r[1] for r in timer.conv.values())
    lines = [f"## {title}", "",
             f"wall time {wall * 1000:.0f} ms (under the op timer: ops {total * 1000:.0f} ms); convolutions "
             f"{conv_t * 1000:.0f} ms = {100 * conv_t / total:.0f}% of op time, {conv_f / 1e9:.1f} GFLOP at "
             f"{conv_f / conv_t / 1e9:.0f} GFLOP/s = {100 * conv_f / conv_t / peak:.0f}% of the peak "
             f"({peak / 1e9:.0f}); its convolution FLOPs over the {'step' if 'training' in title else 'rollout'}'s wall time: "
             f"{100 * conv_f / wall / peak:.0f}% of the peak; {timer.faults} page faults in the timed one", "",
             "| op | time (ms) | share | calls |", "|---|---|---|---|"]
    for name, t in sorted(timer.time.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {name} | {t * 1000:.1f} | {100 * t / total:.1f}% | {timer.count[name]} |")
    lines += ["", "Convolutions by shape, the most time lost against the peak first:", "",
              "| pass | channels | kernel | groups | batch | time (ms) | GFLOP | GFLOP/s | of peak | lost (ms) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    rows = sorted(timer.conv.items(), key=lambda kv: -(kv[1][0] - kv[1][1] / peak))
    for (kind, ch, k, grp, b), (t, f, n) in rows[:top]:
        lines.append(f"| {kind} | {ch} | {k} | {grp} | {b} | {t * 1000:.1f} | {f / 1e9:.2f} | {f / t / 1e9:.0f} | "
                     f"{100 * f / t / peak:.0f}% | {(t - f / peak) * 1000:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="lab", help="a recipe's name or a YAML file (best: its own "
                    "batch of clips, as benchmarks/speed.py takes it)")
    ap.add_argument("--threads", default="auto", type=threads_arg,
                    help="a number, auto or none (as benchmarks/speed.py)")
    ap.add_argument("--warm", type=int, default=4, help="warm-up steps (the heap stops growing after ~3)")
    ap.add_argument("--roll-len", type=int, default=65, help="frames of the profiled rollout")
    ap.add_argument("--top", type=int, default=15, help="rows per table")
    ap.add_argument("--out", default=None, help="also write the tables to this file")
    args = ap.parse_args(argv)

    if os.environ.get("POSECAST_BENCH_GN") == "torch":  # torch's GroupNorm kernel, as benchmarks/speed.py's row
        unet.GroupNorm.forward = torch.nn.GroupNorm.forward
    precision = "bf16" if perf.bf16_supported() else "fp32"
    threads = perf.set_threads(args.threads)
    cfg = cfgmod.override(speed.load_config(args.preset), precision=precision)
    B, T = speed.recipe_batch(args.preset, argparse.Namespace(train_b=speed.TRAIN_B, train_t=speed.TRAIN_T))
    model = perf.prepare(speed.build_model(cfg), perf.FastOptions(precision=precision, channels_last=True))
    opt = make_optimizer(model, cfg.optim)
    frames, poses = speed.make_clips(cfg, B, T)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    peak = max(speed.gemm_peak(dtype).values()) * 1e9
    load = speed.load1()
    head = (f"`python benchmarks/op_profile.py --preset {args.preset} --threads {args.threads}`: {threads} threads, "
            f"{precision}, channels_last; 1-min load {load:.2f} at the start; GEMM peak {peak / 1e9:.0f} GFLOP/s "
            f"(the best of benchmarks/speed.py's three, measured now)\nCPU: {perf.cpu_summary()}\n\n")

    wall, timer = profile(lambda: speed.fast_train_step(model, opt, frames, poses, True, cfg), args.warm)
    n = B * (T - 1)
    text = head + report(f"training step, {B} clips x {T - 1} predicted frames, "
                         f"teacher forcing on", wall, timer, peak, args.top)
    roll_first, roll_poses = speed.make_clips(cfg, speed.ROLL_SEQS, args.roll_len, seed=1)
    roll = lambda: speed.fast_rollout(model, roll_first[:, 0], roll_poses, precision)  # noqa: E731
    wall, timer = profile(roll, 1)
    text += "\n" + report(f"rollout, {speed.ROLL_SEQS} sequences x {args.roll_len - 1} predicted frames", wall,
                          timer, peak, args.top)
    text += f"\n(training: {n} frames per step; 1-min load {speed.load1():.2f} at the end)\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return text


if __name__ == "__main__":
    main()
