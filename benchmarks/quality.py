"""Quality benchmark: train a config on the real train split for a fixed budget, roll out the val
sequence (629 predicted frames from frame 0 and the poses) and compare with copying frame 0.

    python benchmarks/quality.py --config configs/best.yaml --minutes 60

Prints one table and writes it (and JSON) to benchmarks/results/, with the PSNR-per-frame plot and
the GIF. The figure reported is the *last* checkpoint (no selection on the val sequence); the
best-by-val epoch is shown beside it, labelled as such.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from posecast import config as cfgmod
from posecast.data.lab import load_split
from posecast.evaluation.evaluate import load_model
from posecast.evaluation.metrics import psnr, ssim
from posecast.evaluation.plots import plot_psnr_per_frame
from posecast.evaluation.rollout import evaluate_sequences, to_float
from posecast.evaluation.video import side_by_side, write_gif
from posecast.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dance"


def copy_first_baseline(seq, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    truth = to_float(seq.frames[1:T])
    first = to_float(seq.frames[:1]).expand_as(truth)
    return psnr(first, truth), ssim(first, truth)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small", help="a YAML file or a preset name")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock training budget")
    ap.add_argument("--epochs", type=int, default=None, help="epoch budget (overrides num_epoch)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--val-len", type=int, default=630, help="frames of the val sequence rolled out")
    ap.add_argument("--out", default=None, help="run folder (default benchmarks/results/quality_runs/NAME)")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="config overrides (YAML values)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    import yaml

    cfg = cfgmod.load(args.config) if args.config.endswith((".yaml", ".yml")) else cfgmod.preset(args.config)
    name = Path(args.config).stem
    over = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.minutes is not None:
        over["max_time"] = args.minutes * 60
    if args.epochs is not None:
        over["num_epoch"] = args.epochs
    if args.seed is not None:
        over["seed"] = args.seed
    over["val_vi_len"] = args.val_len
    cfg = cfgmod.override(cfg, **over).validate()
    if args.set:
        name += "+" + ",".join(args.set)
    out = Path(args.out) if args.out else Path(args.results) / "quality_runs" / name.replace("/", "_")
    if (out / "checkpoints").exists():
        raise SystemExit(f"{out} exists: remove it or give --out (a benchmark trains from scratch)")

    t0 = time.perf_counter()
    trainer = Trainer(cfg, args.data, out, progress=not args.quiet, log=(lambda s: None) if args.quiet else print)
    trainer.fit()
    train_s = time.perf_counter() - t0

    val = load_split(args.data, "val", (cfg.data.frame_H, cfg.data.frame_W))
    T = min(args.val_len, len(val))
    model, _ = load_model(out / "checkpoints" / "last.ckpt")
    ev = evaluate_sequences(model, [val], length=T, z_mode=cfg.train.z_infer, seed=cfg.train.seed,
                            precision=cfg.train.precision)
    base_p, base_s = copy_first_baseline(val, T)
    best_state = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    res = {
        "config": name, "epochs": trainer.epoch, "train_seconds": round(train_s, 1),
        "budget": f"{args.minutes} min" if args.minutes else f"{cfg.train.num_epoch} epochs",
        "z": cfg.train.z_infer, "frames": T - 1,
        "psnr_mean": round(ev.mean_psnr, 3), "psnr_min": round(ev.min_psnr, 3), "ssim_mean": round(ev.mean_ssim, 4),
        "copy_first_psnr": round(float(base_p.mean()), 3), "copy_first_ssim": round(float(base_s.mean()), 4),
        "best_val_epoch": int(best_state["epoch"]), "best_val_psnr": round(float(best_state["best_psnr"]), 3),
        "torch_threads": torch.get_num_threads(), "load_avg_start": os.getloadavg()[0],
        "machine": platform.processor() or platform.machine(),
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    stem = f"quality_{name.replace('/', '_')}"
    plot_psnr_per_frame({f"{name} (last ckpt)": ev.psnr[0, 0].numpy(), "copy frame 0": base_p.numpy()},
                        results / f"{stem}_psnr.png", title=f"Val rollout, {T - 1} predicted frames")
    write_gif(results / f"{stem}.gif", side_by_side(ev.pred[0, 0], to_float(val.frames[:T]), to_float(val.poses[:T]),
                                                    labels=["prediction", "ground truth", "pose"]))
    header = "| config | budget | epochs | z | mean PSNR | min PSNR | SSIM | copy-frame-0 PSNR | copy-frame-0 SSIM | best-by-val epoch (PSNR) |"
    row = (f"| {name} | {res['budget']} ({train_s / 60:.1f} min) | {res['epochs']} | {res['z']} | {res['psnr_mean']:.2f} | "
           f"{res['psnr_min']:.2f} | {res['ssim_mean']:.3f} | {res['copy_first_psnr']:.2f} | {res['copy_first_ssim']:.3f} | "
           f"{res['best_val_epoch']} ({res['best_val_psnr']:.2f}) |")
    table = "\n".join([header, "|---" * (header.count("|") - 1) + "|", row])
    print(table)
    (results / f"{stem}.md").write_text(f"`python benchmarks/quality.py {' '.join(argv or sys.argv[1:])}`\n\n{table}\n")
    (results / f"{stem}.json").write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
