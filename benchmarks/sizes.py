"""Frame sizes benchmark: the own-video path end to end at a frame size, as a user runs it.

    python benchmarks/sizes.py --size 128x64 --minutes 10

For each size: a clip of the real dancer (the dance data's train and val frames in order, 2,517
frames at 30 fps, upscaled to 8x 64x32 = 512x256: the only video of a whole person at hand), then

    posecast prepare CLIP --out DATASET --size WxH --fps 30
    posecast train --data DATASET --preset best --minutes M --out RUN
    posecast animate --checkpoint RUN/checkpoints/last.ckpt --first-frame DATASET/test/test_img/0/frame0.png
                     --driving DATASET/test/test_label/0 --truth DATASET/gt/0.npz --out RESULTS/WxH_Mmin/animation.mp4

and the last checkpoint scored on the clip's own held-out test split (its last 3 s, never trained
on) beside copying frame 0; beside it, the run's last validation (the clip's val split, where the
dancer moves more) and copying frame 0 there. The frames are upscaled 64x32 frames: a larger size shows what the
pipeline and the model's cost do at that size, not the detail a camera would give.

Writes RESULTS/sizes.md and .json (one row per size and budget, merged with rows already there)
and each row's animation (MP4, GIF), PSNR plot and logs in RESULTS/WxH_Mmin/. --score-only
scores the runs already in --work again (after a change to the scoring) without training: each
row's run is WORK/run_WxH_Mmin, its dataset WORK/data_WxH (one per size).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from posecast import perf
from posecast.analysis.baselines import copy_first
from posecast.analysis.evaluate import evaluate
from posecast.data.lab import DataError, load_split
from posecast.io.checkpoint import load_checkpoint
from posecast.perf import to_float
from posecast.training.run import Run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dance"
UPSCALE = 8


def split_frames(data: Path, split: str) -> list[Path]:
    """The frames of a lab-layout split, frame0.png, frame1.png ... up to the first one missing."""
    folder, frames = data / split / f"{split}_img", []
    while (folder / f"frame{len(frames)}.png").exists():
        frames.append(folder / f"frame{len(frames)}.png")
    if not frames:
        raise SystemExit(f"{folder}: no frame0.png (a dataset in the lab layout is needed)")
    return frames


def write_clip(data: Path, folder: Path) -> int:
    """The train and val frames, in order, upscaled UPSCALE x (bicubic) into ``folder``; their count."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = split_frames(data, "train") + split_frames(data, "val")
    for i, src in enumerate(frames):
        dst = folder / f"frame{i:05d}.png"
        if not dst.exists():
            im = Image.open(src).convert("RGB")
            im.resize((im.width * UPSCALE, im.height * UPSCALE), Image.BICUBIC).save(dst)
    return len(frames)


def posecast(*args: str) -> str:
    """Run ``posecast ARGS`` as a user would; its output (raises with it on failure)."""
    done = subprocess.run([sys.executable, "-m", "posecast.cli", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"posecast {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def run_size(size: str, minutes: float, clip: Path, work: Path, results: Path) -> dict:
    dataset, run_dir, out = work / f"data_{size}", work / f"run_{row_name(size, minutes)}", results / row_name(size, minutes)
    for stale in (dataset, run_dir):
        shutil.rmtree(stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    posecast("prepare", str(clip), "--out", str(dataset), "--size", size, "--fps", "30")
    prepare_s = time.perf_counter() - t0
    train_log = posecast("train", "--data", str(dataset), "--preset", "best", "--minutes", f"{minutes:g}",
                         "--out", str(run_dir), "--no-progress")
    (out / "train.log").write_text(train_log)
    last = Run(run_dir).last_ckpt
    test = dataset / "test"
    animate_log = posecast("animate", "--checkpoint", str(last), "--first-frame", str(test / "test_img" / "0" / "frame0.png"),
                           "--driving", str(test / "test_label" / "0"), "--truth", str(dataset / "gt" / "0.npz"),
                           "--out", str(out / "animation.mp4"))
    (out / "animate.log").write_text(animate_log)
    return {"size": size, "minutes": minutes, "prepare_seconds": round(prepare_s, 1),
            **score_run(dataset, run_dir, out)}


def score_run(dataset: Path, run_dir: Path, out: Path) -> dict:
    """A trained run's row: its epochs and training time, its last checkpoint on the clip's held-out
    test split beside copying frame 0, and its last validation (the recipe's rollout of the clip's
    val split, from metrics.csv) beside copying frame 0 there."""
    run = Run(run_dir)
    cfg, rows = run.read_log()
    last = run.last_ckpt
    state = load_checkpoint(last)
    s = evaluate(last, dataset, out / "eval_test", split="test", video=False)
    val = load_split(dataset, "val", (cfg.data.frame_H, cfg.data.frame_W))
    val_len = min(cfg.data.val_vi_len, len(val))
    val_psnr = [float(r["val_psnr"]) for r in rows if r.get("val_psnr")]
    return {"epochs": int(state["epoch"]), "train_minutes": round(float(state["elapsed"]) / 60, 2),
            "test_frames": s["frames"] - 1, "psnr_mean": round(s["mean_psnr"], 3), "psnr_min": round(s["min_psnr"], 3),
            "ssim_mean": round(s["mean_ssim"], 4), "copy_first_psnr": round(s["baselines"]["copy_first"], 3),
            "val_psnr_mean": round(val_psnr[-1], 3) if val_psnr else None,
            "val_copy_first_psnr": round(float(copy_first(to_float(val.frames[:val_len])).mean()), 3)}


def new_row(size: str, minutes: float, clip: Path, work: Path, results: Path) -> dict:
    """``run_size``'s row with the CPU, the precision and the 1-minute load at the start."""
    load = os.getloadavg()[0]
    row = run_size(size, minutes, clip, work, results)
    return {**row, "cpu": perf.cpu_summary(), "precision": perf.resolve_precision("auto"), "load_start": load}


def score_again(rows: list[dict], size: str, minutes: float, work: Path, results: Path) -> dict:
    """The row of ``size`` and ``minutes`` with its run in ``work`` scored again (``score_run``)."""
    key = row_name(size, minutes)
    old = {row_name(r["size"], r["minutes"]): r for r in rows}.get(key)
    if old is None:
        raise SystemExit(f"{results / 'sizes.json'}: no {key} row to score again (train it without --score-only)")
    try:
        return {**old, **score_run(work / f"data_{size}", work / f"run_{key}", results / key)}
    except DataError as e:  # no run or dataset where --work says: one line, not a traceback
        raise SystemExit(f"--score-only {key}: {e}") from None


def row_name(size: str, minutes: float) -> str:
    """A row's key, and its folder under RESULTS: the size and the budget (``256x128_60min``)."""
    return f"{size}_{minutes:g}min"


def merged(rows: list[dict], row: dict) -> list[dict]:
    """``rows`` with ``row`` added (replacing the row of the same size and budget), ordered by size
    then budget."""
    keyed = {row_name(r["size"], r["minutes"]): r for r in rows}
    keyed[row_name(row["size"], row["minutes"])] = row
    return sorted(keyed.values(), key=lambda r: [int(v) for v in r["size"].split("x")] + [r["minutes"]])


def _db(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table(rows: list[dict]) -> str:
    lines = ["| size | budget | epochs | trained (min) | held-out mean PSNR | min PSNR | SSIM | copying frame 0 "
             "| val mean PSNR | val: copying frame 0 | CPU, load |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['minutes']:g} min | {r['epochs']} | {r['train_minutes']:.1f} | "
                     f"{r['psnr_mean']:.2f} | {r['psnr_min']:.2f} | {r['ssim_mean']:.3f} | {r['copy_first_psnr']:.2f} | "
                     f"{_db(r.get('val_psnr_mean'))} | {_db(r.get('val_copy_first_psnr'))} | "
                     f"{r['cpu']}, {r['precision']}, 1-min load {r['load_start']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", nargs="+", default=["128x64"], help="frame sizes WxH (default 128x64)")
    ap.add_argument("--minutes", type=float, default=60.0, help="training budget per size (default 60)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="the dance data (lab layout)")
    ap.add_argument("--work", default="/tmp/posecast_sizes", help="clip, datasets and runs (kept between calls)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / f"sizes_{perf.cpu_kind()}"))
    ap.add_argument("--score-only", action="store_true",
                    help="score the runs already in --work again (no prepare, train or animate) and update their "
                         "rows in --results, which keep the training's CPU and load")
    args = ap.parse_args(argv)
    work, results = Path(args.work), Path(args.results)
    clip = work / "clip"
    if not args.score_only:
        write_clip(Path(args.data), clip)
    old = results / "sizes.json"
    rows = json.loads(old.read_text()) if old.exists() else []
    for size in args.size:
        row = score_again(rows, size, args.minutes, work, results) if args.score_only else \
            new_row(size, args.minutes, clip, work, results)
        rows = merged(rows, row)
        print(table([row]), flush=True)
        results.mkdir(parents=True, exist_ok=True)
        old.write_text(json.dumps(rows, indent=2))
        cmd = "python benchmarks/sizes.py --size SIZE --minutes M (each row's budget in its row)"
        (results / "sizes.md").write_text(f"`{cmd}`\n\n{table(rows)}\n")
    return rows


if __name__ == "__main__":
    main()
