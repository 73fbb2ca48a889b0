"""Helpers for the robustness tests: the CLI in a child process or in this one, run folders, and
the lab template's checkpoint layout (a plain module: conftest files cannot be imported)."""
from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from posecast import cli

TIMING = ("epoch_time", "elapsed")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child `posecast` process: one thread, like this test process (the
    same thread count keeps float reductions in the same order, so runs compare bitwise)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               MPLBACKEND="Agg")
    env.pop("LOCAL_RANK", None)
    env.update(extra)
    return env


# A child that runs `posecast` with hooks that kill it at a chosen point (SIGKILL, so nothing of
# the process gets to clean up). RB_HOOK picks the point, RB_AT the occurrence.
CHILD = r"""
import io, os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
import posecast.io.checkpoint as ck
import posecast.training.run as run_mod
from posecast import cli

hook, at = os.environ.get("RB_HOOK", ""), int(os.environ.get("RB_AT", "0"))
seen = {"n": 0}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if hook == "mid_checkpoint_write":  # half of last.ckpt written to its temporary file, then killed
    orig_atomic = ck.atomic_write_bytes
    def atomic(path, write):
        if Path(path).name == "last.ckpt":
            seen["n"] += 1
            if seen["n"] == at:
                def half(f):
                    buf = io.BytesIO()
                    write(buf)
                    data = buf.getvalue()
                    f.write(data[: len(data) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                    die()
                return orig_atomic(path, half)
        return orig_atomic(path, write)
    ck.atomic_write_bytes = atomic
elif hook == "after_checkpoint":  # last.ckpt of epoch `at` complete, metrics row not yet handled
    orig_save = run_mod.save_checkpoint
    def save(path, state):
        orig_save(path, state)
        if Path(path).name == "last.ckpt":
            seen["n"] += 1
            if seen["n"] == at:
                die()
    run_mod.save_checkpoint = save
elif hook == "after_metrics_row":  # metrics row of epoch `at` appended, then killed
    orig_append = run_mod.Run.append_metrics
    def append(self, row):
        orig_append(self, row)
        seen["n"] += 1
        if seen["n"] == at:
            die()
    run_mod.Run.append_metrics = append
raise SystemExit(cli.main(sys.argv[1:]))
"""


def start_child(args: list[Any], **env: str) -> subprocess.Popen:
    """`posecast ARGS` in a child process (with the CHILD hooks when RB_HOOK is set)."""
    argv = [str(a) for a in args]
    cmd = [sys.executable, "-c", CHILD, *argv] if env.get("RB_HOOK") else [sys.executable, "-m", "posecast.cli", *argv]
    return subprocess.Popen(cmd, env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_child(args: list[Any], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    proc = start_child(args, **env)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_cli(args: list[Any]) -> tuple[int, str, str]:
    """`posecast ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else 1
            if not isinstance(exc.code, int) and exc.code is not None:
                print(exc.code, file=sys.stderr)
    return code, out.getvalue(), err.getvalue()


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with (Path(run_dir) / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def without_timing(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def assert_log_matches_checkpoint(run_dir: Path) -> int:
    """Every epoch in last.ckpt has its metrics row, once; rows past it (an epoch logged but not
    checkpointed) are allowed: a resume drops them. Returns the checkpoint's epoch."""
    from posecast.io.checkpoint import load_checkpoint

    done = load_checkpoint(Path(run_dir) / "checkpoints" / "last.ckpt")["epoch"]
    epochs = [int(r["epoch"]) for r in metrics_rows(run_dir)]
    assert epochs[:done] == list(range(done)), f"rows {epochs} for a checkpoint at epoch {done}"
    assert epochs[done:] in ([], [done]), f"rows {epochs} for a checkpoint at epoch {done}"
    return done


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder (relative name -> bytes): to show that nothing changed."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- the lab template's checkpoint layout ----------------------------------------------------------
# Key names and shapes of NYCU DLP Lab 4's VAE_Model.state_dict() (modules/modules.py and
# modules/layers.py of the template), written out from the template's module structure:
#   ResidualBlock(in, out):   conv1 3x3, conv2 3x3, skip 1x1 (only when in != out)
#   DepthConvBlock(in, out):  block.0 = DepthConv: conv1.0 1x1 (in->in), depth_conv 3x3 depthwise,
#                             conv2 1x1 (in->out), adaptor 1x1 (only when in != out);
#                             block.1 = ConvFFN(out): conv 1x1 (out->4*out), conv_out 1x1 (2*out->out)
def _conv(sd: dict, name: str, cout: int, cin: int, k: int) -> None:
    sd[f"{name}.weight"] = torch.Size([cout, cin, k, k])
    sd[f"{name}.bias"] = torch.Size([cout])


def _rb(sd: dict, p: str, cin: int, cout: int) -> None:
    _conv(sd, f"{p}.conv1", cout, cin, 3)
    _conv(sd, f"{p}.conv2", cout, cout, 3)
    if cin != cout:
        _conv(sd, f"{p}.skip", cout, cin, 1)


def _dcb(sd: dict, p: str, cin: int, cout: int) -> None:
    _conv(sd, f"{p}.block.0.conv1.0", cin, cin, 1)
    sd[f"{p}.block.0.depth_conv.weight"] = torch.Size([cin, 1, 3, 3])
    sd[f"{p}.block.0.depth_conv.bias"] = torch.Size([cin])
    _conv(sd, f"{p}.block.0.conv2", cout, cin, 1)
    if cin != cout:
        _conv(sd, f"{p}.block.0.adaptor", cout, cin, 1)
    _conv(sd, f"{p}.block.1.conv", 4 * cout, cout, 1)
    _conv(sd, f"{p}.block.1.conv_out", cout, 2 * cout, 1)


def lab_layout(F: int = 128, L: int = 32, N: int = 12, D: int = 192) -> "OrderedDict[str, torch.Size]":
    """Key -> shape of the lab's VAE_Model state_dict, in its order (defaults: the lab's sizes)."""
    sd: OrderedDict[str, Any] = OrderedDict()
    p = "frame_transformation"  # RGB_Encoder(3, F)
    _rb(sd, f"{p}.0", 3, F // 8), _dcb(sd, f"{p}.1", F // 8, F // 8)
    _rb(sd, f"{p}.2", F // 8, F // 4), _dcb(sd, f"{p}.3", F // 4, F // 4)
    _rb(sd, f"{p}.4", F // 4, F // 2), _dcb(sd, f"{p}.5", F // 2, F // 2)
    _conv(sd, f"{p}.6", F, F // 2, 3)
    p = "label_transformation"  # Label_Encoder(3, L): ReflectionPad2d(3), 7x7 conv, BatchNorm2d, LeakyReLU
    _conv(sd, f"{p}.1", L // 2, 3, 7)
    for name in ("weight", "bias", "running_mean", "running_var"):
        sd[f"{p}.2.{name}"] = torch.Size([L // 2])
    sd[f"{p}.2.num_batches_tracked"] = torch.Size([])
    _rb(sd, f"{p}.4", L // 2, L)
    p, cin = "Gaussian_Predictor", F + L  # Gaussian_Predictor(F + L, N)
    _rb(sd, f"{p}.0", cin, N // 4), _dcb(sd, f"{p}.1", N // 4, N // 4)
    _rb(sd, f"{p}.2", N // 4, N // 2), _dcb(sd, f"{p}.3", N // 2, N // 2)
    _rb(sd, f"{p}.4", N // 2, N)
    _conv(sd, f"{p}.6", 2 * N, N, 1)
    p, cin = "Decoder_Fusion", F + L + N  # Decoder_Fusion(F + L + N, D)
    _dcb(sd, f"{p}.0", cin, cin), _rb(sd, f"{p}.1", cin, cin // 4)
    _dcb(sd, f"{p}.2", cin // 4, cin // 2), _rb(sd, f"{p}.3", cin // 2, cin // 2)
    _dcb(sd, f"{p}.4", cin // 2, D // 2)
    _conv(sd, f"{p}.5", D, D // 2, 1)
    p = "Generator"  # Generator(D, 3)
    _dcb(sd, f"{p}.0", D, D), _rb(sd, f"{p}.1", D, D // 2)
    _dcb(sd, f"{p}.2", D // 2, D // 2), _rb(sd, f"{p}.3", D // 2, D // 4)
    _dcb(sd, f"{p}.4", D // 4, D // 4), _rb(sd, f"{p}.5", D // 4, D // 8)
    _dcb(sd, f"{p}.6", D // 8, D // 8)
    _conv(sd, f"{p}.7", 3, D // 8, 1)
    return sd


def lab_state_dict(seed: int = 0, **dims: int) -> "OrderedDict[str, torch.Tensor]":
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, shape in lab_layout(**dims).items():
        out[k] = (torch.tensor(7) if k.endswith("num_batches_tracked")
                  else torch.randn(shape, generator=g) * 0.05)
    return out


def save_like_the_lab(path: Path, state_dict: dict[str, torch.Tensor], epoch: int = 12) -> Path:
    """What the lab's Trainer.save writes (its "optimizer" entry is the model's state_dict again)."""
    torch.save({"state_dict": state_dict, "optimizer": state_dict, "lr": 1e-4, "tfr": 0.3,
                "last_epoch": epoch}, path)
    return path
