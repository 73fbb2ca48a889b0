"""Does bf16 autocast hurt the rollout? A trained checkpoint rolled out in fp32 and in bf16.

    python benchmarks/precision.py --checkpoint runs/quality/best/checkpoints/last.ckpt

Rolls out the val sequence of ``--data`` (default ../shared/data/dance) from frame 0 and the
poses, ``--length`` frames, with z = 0 (the prior's mean) and with z drawn from the prior
(``--samples`` seeds; both precisions get the same draws), once in fp32 and once with bf16
autocast, the model in the memory layout its config trains with. Scores each rollout against the
ground truth (PSNR, SSIM), and the bf16 frames against the fp32 frames (how far the two
trajectories drift apart). Prints one table and writes it (with JSON and a PSNR-per-frame plot)
to ``--results`` as precision.{md,json} and precision_psnr.png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from posecast import perf
from posecast.analysis.plots import plot_psnr_per_frame
from posecast.cli.common import threads_arg
from posecast.data.lab import DataError, load_split
from posecast.inference.load import load_model
from posecast.io.checkpoint import CheckpointError
from posecast.metrics import psnr, ssim
from posecast.perf import to_float
from posecast.rollout import predict
from posecast.runtime import tune_allocator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dance"
PRECISIONS = ("fp32", "bf16")


def rollouts(model: torch.nn.Module, first: torch.Tensor, poses: torch.Tensor, z_mode: str, seeds: list[int],
             precision: str) -> tuple[torch.Tensor, float]:
    """[S, T, 3, H, W] predictions (one per seed) and the rollouts' frames/s (predicted frames)."""
    predict(model, first, poses[:, :8], z_mode=z_mode, seed=0, precision=precision)  # warm-up
    preds, seconds = [], 0.0
    for s in seeds:
        t0 = time.perf_counter()
        preds.append(predict(model, first, poses, z_mode=z_mode, seed=s, precision=precision)[0])
        seconds += time.perf_counter() - t0
    return torch.stack(preds), len(seeds) * (poses.shape[1] - 1) / seconds


def compare(checkpoint: str | Path, data: str | Path, length: int, samples: int,
            log=print) -> dict[str, Any]:
    """The figures of the table: per z mode and precision, PSNR/SSIM against the truth, frames/s,
    and PSNR of the bf16 frames against the fp32 frames; per-frame curves under ``curves``."""
    model, cfg = load_model(checkpoint)
    val = load_split(data, "val", (cfg.data.frame_H, cfg.data.frame_W))
    T = min(length, len(val))
    if T < 2:
        raise SystemExit(f"{data}: the val sequence has {len(val)} frame(s); at least 2 are needed")
    first, poses = val.frames[:1], val.poses[None, :T]
    truth = to_float(val.frames[1:T])
    res: dict[str, Any] = {"frames": T - 1, "layout": "channels_last" if cfg.runtime.channels_last else "NCHW",
                           "rows": [], "curves": {}}
    for z_mode, seeds in (("zero", [0]), ("prior", list(range(samples)))):
        preds = {}
        for prec in PRECISIONS:
            pred, fps = rollouts(model, first, poses, z_mode, seeds, prec)
            preds[prec] = pred[:, 1:]
            target = truth.expand_as(preds[prec])
            p, s = psnr(preds[prec], target), ssim(preds[prec], target)  # [S, T-1]
            row = {"z": z_mode, "samples": len(seeds), "precision": prec, "psnr_mean": float(p.mean()),
                   "psnr_min": float(p.mean(0).min()), "psnr_last": float(p[:, -1].mean()),
                   "ssim_mean": float(s.mean()), "rollout_fps": fps}
            if prec != "fp32":
                d = psnr(preds[prec], preds["fp32"])  # [S, T-1] dB between the two trajectories
                row.update(vs_fp32_psnr_mean=float(d.mean()), vs_fp32_psnr_min=float(d.min()),
                           psnr_change=row["psnr_mean"] - res["rows"][-1]["psnr_mean"])
            res["rows"].append(row)
            res["curves"][f"{prec}, z {z_mode}"] = p.mean(0)
            log(f"z {z_mode}, {prec}: mean PSNR {row['psnr_mean']:.2f} dB, {fps:.1f} frames/s")
    return res


def table(res: dict[str, Any]) -> str:
    head = ("| z | precision | mean PSNR (dB) | min PSNR | PSNR of the last frame | SSIM | rollout frames/s "
            "| change of mean PSNR vs fp32 | bf16 frames vs fp32 frames: PSNR mean / min |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in res["rows"]:
        z = "0" if r["z"] == "zero" else f"prior ({r['samples']} seeds)"
        change = f"{r['psnr_change']:+.3f} dB" if "psnr_change" in r else ""
        vs = f"{r['vs_fp32_psnr_mean']:.1f} / {r['vs_fp32_psnr_min']:.1f} dB" if "vs_fp32_psnr_mean" in r else ""
        lines.append(f"| {z} | {r['precision']} | {r['psnr_mean']:.2f} | {r['psnr_min']:.2f} | {r['psnr_last']:.2f} "
                     f"| {r['ssim_mean']:.4f} | {r['rollout_fps']:.1f} | {change} | {vs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a posecast checkpoint (e.g. RUN/checkpoints/last.ckpt)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="dataset root with val/ in the lab layout")
    ap.add_argument("--length", type=int, default=630, help="frames of the val sequence (frame 0 given)")
    ap.add_argument("--samples", type=int, default=3, help="rollouts with z from the prior (seeds 0..N-1)")
    ap.add_argument("--threads", type=threads_arg, default=None, help="a number, auto or none (torch's default)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    if args.samples < 1 or args.length < 2:
        ap.error("--samples must be >= 1 and --length >= 2")
    if not Path(args.checkpoint).is_file():
        ap.error(f"no checkpoint at {args.checkpoint}")
    tune_allocator()
    if args.threads is not None:
        perf.set_threads(args.threads)
    if not perf.bf16_supported():
        print("note: this CPU has no native bf16; bf16 runs emulated (the PSNR figures still hold)")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        res = compare(args.checkpoint, args.data, args.length, args.samples)
    except (CheckpointError, DataError) as exc:  # a clear message, not a traceback
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    cmd = "python benchmarks/precision.py " + " ".join(argv if argv is not None else sys.argv[1:])
    head = (f"posecast precision benchmark, {time.strftime('%Y-%m-%d %H:%M')}, `{cmd}` "
            f"({time.perf_counter() - t0:.0f} s)\n"
            f"checkpoint {args.checkpoint}; val sequence of {args.data}, {res['frames']} predicted frames; "
            f"model in {res['layout']}; {torch.get_num_threads()} threads; torch {torch.__version__}; "
            f"CPU {perf.cpu_summary()}; "
            f"1-min load {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    text = head + "\n\n" + table(res) + "\n"
    print(text)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.md").write_text(text)
    curves = res.pop("curves")
    plot_psnr_per_frame({k: v.numpy() for k, v in curves.items()}, out / "precision_psnr.png",
                        title=f"Val rollout in fp32 and bf16, {res['frames']} predicted frames")
    meta = {"checkpoint": str(args.checkpoint), "threads": torch.get_num_threads(), "load_start": load0,
            "cpu": perf.cpu_summary(), "isa": perf.cpu_isa()}
    (out / "precision.json").write_text(json.dumps({**meta, **res}, indent=2))
    return res


if __name__ == "__main__":
    main()
