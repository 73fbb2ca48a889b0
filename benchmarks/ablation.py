"""Ablation of the quality recipe: configs/best.yaml with one option changed at a time, each trained
for the same short epoch budget on the real train split and scored by the full val rollout
(benchmarks/quality.py), plus the recipe's own row.

    python benchmarks/ablation.py --epochs 10

Writes benchmarks/results/ablation.md (and .json). One run at a time: on 2 cores a second job
beside a run slows both (see the README).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import quality  # noqa: E402

# (label, overrides of configs/best.yaml)
VARIANTS = [
    ("recipe (configs/best.yaml)", []),
    ("clips of consecutive frames (data.clip_order: consecutive)", ["clip_order=consecutive"]),
    ("first frame = the clip's frame 0 in training (data.anchor: clip)", ["anchor=clip"]),
    ("raw pose images (model.pose_input: raw)", ["pose_input=raw"]),
    ("direct output, no mask over the first frame (model.output: direct)", ["output=direct"]),
    ("learned prior p(z_t given x_{t-1}, pose_t) (model.prior: learned)", ["prior=learned"]),
]
# evaluated on the recipe row's checkpoint (no training): z at inference
Z_PRIOR = "z sampled from N(0, I) at inference instead of z = 0 (the recipe row's checkpoint)"


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--data", default=str(quality.DEFAULT_DATA))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "ablation"), help="run folders (one per variant)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--only", nargs="*", type=int, help="variant numbers to run (default all)")
    args = ap.parse_args(argv)
    results = Path(args.results)
    rows = []
    for k, (label, sets) in enumerate(VARIANTS):
        if args.only and k not in args.only:
            continue
        out = Path(args.runs) / f"v{k}"
        t0 = time.perf_counter()
        res = quality.main(["--config", str(ROOT / "configs" / "best.yaml"), "--data", args.data,
                            "--epochs", str(args.epochs), "--quiet", "--out", str(out),
                            "--results", str(Path(args.runs) / "results"), "--set", "val_every=1000", *sets])
        res.update(variant=label, overrides=" ".join(sets), wall_s=round(time.perf_counter() - t0, 1))
        rows.append(res)
        print(f"{label}: {res['psnr_mean']:.2f} dB (min {res['psnr_min']:.2f}), SSIM {res['ssim_mean']:.3f}", flush=True)
    base = rows[0] if rows and not rows[0]["overrides"] else None
    if base is not None:  # the same weights, z drawn from the prior (seeded) instead of its mean
        from posecast.data.lab import load_split
        from posecast.inference.load import load_model
        from posecast.inference.rollout import evaluate_sequences

        model, cfg = load_model(Path(args.runs) / "v0" / "checkpoints" / "last.ckpt")
        val = load_split(args.data, "val", (cfg.data.frame_H, cfg.data.frame_W))
        ev = evaluate_sequences(model, [val], length=len(val), z_mode="prior", seed=cfg.runtime.seed,
                                precision=cfg.runtime.precision)
        rows.append(dict(base, variant=Z_PRIOR, overrides="(evaluation only)", psnr_mean=round(ev.mean_psnr, 3),
                         psnr_min=round(ev.min_psnr, 3), ssim_mean=round(ev.mean_ssim, 4), train_seconds=0.0,
                         z="prior"))
    results.mkdir(parents=True, exist_ok=True)
    (results / "ablation.json").write_text(json.dumps(rows, indent=2))
    text = f"CPU: {rows[0]['cpu'] if rows else ''}\n\n" + table(rows, args.epochs)
    (results / "ablation.md").write_text(text)
    print(text)
    return rows


def table(rows: list[dict], epochs: int) -> str:
    """The Markdown table of ablation rows (the recipe's row first, when it was run)."""
    base = rows[0] if rows and not rows[0]["overrides"] else None
    lines = [f"`python benchmarks/ablation.py --epochs {epochs}` (each row trains configs/best.yaml "
             f"for {epochs} epochs on the train split with one change, seed 0; val rollout of 629 frames)", "",
             "| variant | mean PSNR (dB) | vs recipe | min PSNR | SSIM | train time |", "|---|---|---|---|---|---|"]
    for r in rows:
        delta = "" if base is None or r is base else f"{r['psnr_mean'] - base['psnr_mean']:+.2f}"
        took = f"{r['train_seconds'] / 60:.1f} min" if r["train_seconds"] else "(none)"
        lines.append(f"| {r['variant']} | {r['psnr_mean']:.2f} | {delta} | {r['psnr_min']:.2f} | "
                     f"{r['ssim_mean']:.3f} | {took} |")
    if rows:
        lines += ["", f"copy frame 0 forward: {rows[0]['copy_first_psnr']:.2f} dB, SSIM {rows[0]['copy_first_ssim']:.3f}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
