"""Speed options for a PoseCVAE on CPU: memory layout, bf16, torch.compile, threads, allocator.

Each option is measured by ``benchmarks/speed.py`` before it becomes a default; the trainer and
the rollout take them through :class:`FastOptions` and :func:`prepare`::

    opts = FastOptions(precision="bf16", channels_last=True)
    model = prepare(model, opts)          # in place; returns the model
    with autocast(opts.precision):        # bf16 autocast where asked for
        ...

All options keep the parameters' names and dtypes (fp32 master weights), so checkpoints, the
optimiser and ``state_dict`` are unchanged.
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .runtime import tune_allocator

# the submodules of a PoseCVAE that run convolutions (prior_net may be None)
SUBMODULES = ("frame_encoder", "pose_encoder", "posterior_net", "fusion", "generator", "prior_net")


@dataclass
class FastOptions:
    """How to run a model: ``precision`` fp32 | bf16 (CPU autocast), ``channels_last`` (NHWC
    activations and weights), ``compile`` (torch.compile of each submodule), ``threads``
    (intra-op threads; None keeps torch's choice), ``allocator`` (glibc malloc tuning)."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    threads: int | str | None = None
    allocator: bool = True

    def label(self) -> str:
        parts = [self.precision]
        if self.channels_last:
            parts.append("channels_last")
        if self.compile:
            parts.append("compile")
        if self.threads:
            parts.append(f"{self.threads}t")
        return "+".join(parts)


# /proc/cpuinfo flag -> the name used in logs and benchmark headers: the instruction sets that decide
# which precision and kernels are fast (fp32 FMA width, native bf16 dot products, AMX tiles)
ISA_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The flags of the first CPU in /proc/cpuinfo (empty where there is no such file)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=None)
def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_isa(flags: frozenset[str] | None = None) -> dict[str, bool]:
    """Which of AVX2, AVX-512, AVX512-BF16 and AMX-BF16 this CPU has, in that order."""
    flags = cpu_flags() if flags is None else flags
    return {name: flag in flags for flag, name in ISA_FLAGS.items()}


def cpu_summary(flags: frozenset[str] | None = None) -> str:
    """One line for logs and benchmark headers, e.g. ``AMD EPYC x2 (AVX2; no AVX-512, no
    AVX512-BF16, no AMX-BF16; torch kernels: AVX2)``."""
    isa = cpu_isa(flags)
    have = [k for k, v in isa.items() if v] or ["none of AVX2/AVX-512"]
    lacks = [f"no {k}" for k, v in isa.items() if not v]
    try:
        kernels = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # older torch
        kernels = "unknown"
    detail = ", ".join(have) + ("; " + ", ".join(lacks) if lacks else "")
    return f"{cpu_name()} x{physical_cores()} ({detail}; torch kernels: {kernels})"


def cpu_kind(flags: frozenset[str] | None = None) -> str:
    """A short name of the CPU kind for result files: ``amxbf16``, ``avx512bf16``, ``avx512``,
    ``avx2`` or ``other`` (the best of these the CPU has)."""
    isa = cpu_isa(flags)
    for name, kind in (("AMX-BF16", "amxbf16"), ("AVX512-BF16", "avx512bf16"), ("AVX-512", "avx512"), ("AVX2", "avx2")):
        if isa[name]:
            return kind
    return "other"


@functools.lru_cache(maxsize=None)
def bf16_supported() -> bool:
    """Whether this CPU runs bf16 convolutions/matmuls natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``auto``: bf16 autocast where the device runs bf16 natively (a CPU with AVX512-BF16 or
    AMX, a CUDA GPU with bf16), fp32 elsewhere; ``fp32`` and ``bf16`` stay as they are."""
    if precision != "auto":
        return precision
    kind = torch.device(device).type
    if kind == "cpu":
        return "bf16" if bf16_supported() else "fp32"
    if kind == "cuda" and torch.cuda.is_available():
        # native bf16 from compute capability 8.0 (Ampere) on, judged on the device asked for
        # (torch.cuda.is_bf16_supported() also says yes where bf16 is only emulated)
        return "bf16" if torch.cuda.get_device_capability(torch.device(device)) >= (8, 0) else "fp32"
    return "fp32"


def physical_cores() -> int:
    """CPUs this process may run on (the affinity mask, else os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def auto_threads(load: float | None = None) -> int:
    """Intra-op threads for this machine as it is now: one per CPU that other processes leave
    idle by the 1-minute load average (at least 1, at most every usable CPU). The load average
    counts this process's own busy threads too: decide before this process starts its work.

    On a shared 2-core machine with other busy jobs, two OpenMP threads wait at every barrier
    for the one the scheduler has parked (libgomp spins, then sleeps): measured 2-4x slower
    steps than one thread under a load of 3-5 (see benchmarks/speed.py and docs/performance.md)."""
    cpus = physical_cores()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return cpus
    return max(1, min(cpus, int(cpus - max(0.0, load) + 0.5)))


def set_threads(n: int | str | None) -> int:
    """Intra-op threads: a number, ``"auto"`` (:func:`auto_threads`) or None (one per usable
    CPU); inter-op threads are set to 1 when still possible (this model has no parallel
    branches). Returns the number in effect."""
    if n == "auto":
        n = auto_threads()
    n = physical_cores() if n is None else max(1, int(n))
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before any inter-op work has started
        pass
    return torch.get_num_threads()


def use_channels_last(model: nn.Module) -> nn.Module:
    """Weights in channels_last (NHWC); convolutions then return NHWC activations, which the
    oneDNN kernels run without reorders. In place; returns the model."""
    return model.to(memory_format=torch.channels_last)


def compile_submodules(model: nn.Module, **kwargs: Any) -> nn.Module:
    """torch.compile each convolutional submodule in place (``nn.Module.compile``), leaving the
    model's Python control flow (teacher-forcing split, time loop) eager. Parameter names are
    unchanged. ``kwargs`` go to torch.compile (e.g. ``mode``, ``dynamic``)."""
    kwargs.setdefault("dynamic", False)
    for name in SUBMODULES:
        sub = getattr(model, name, None)
        if sub is not None:
            sub.compile(**kwargs)
    return model


def prepare(model: nn.Module, opts: FastOptions) -> nn.Module:
    """Apply ``opts`` to a model (in place) and to the process (threads, allocator)."""
    if opts.allocator:
        tune_allocator()
    if opts.threads is not None:
        set_threads(opts.threads)
    if opts.precision == "bf16" and not bf16_supported():
        warnings.warn("bf16 autocast on a CPU without native bf16 (AVX512-BF16/AMX) is emulated and slow; "
                      "fp32 is faster here", RuntimeWarning, stacklevel=2)
    if opts.channels_last:
        use_channels_last(model)
    if opts.compile:
        compile_submodules(model)
    return model


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [.., 3, H, W] -> float32 in [0, 1]."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def autocast(precision: str, device: torch.device | str = "cpu"):
    """bf16 autocast when asked (``bf16``, or ``auto`` on a device with native bf16), a no-op
    context otherwise."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """A [B, C, H, W] or [B, T, C, H, W] tensor with channels innermost (NHWC strides): one copy,
    or none when it has them already (a time slice of an NHWC clip included). Other ranks are
    returned as they are."""
    if x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    if x.dim() == 5:
        return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    return x
