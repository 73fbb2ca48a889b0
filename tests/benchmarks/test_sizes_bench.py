"""benchmarks/sizes.py's clip: the real frames of train then val, in order, upscaled 8x; and its
table. (The end-to-end run itself trains for minutes: docs/poses.md has its command and figures.)"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from posecast.analysis.baselines import baseline_psnrs
from posecast.data.lab import load_split
from posecast.perf import to_float
from posecast_testing import dance_root, load_benchmark


def test_the_clip_is_train_then_val_upscaled_in_order(tmp_path) -> None:
    sizes = load_benchmark("sizes")
    data = tmp_path / "data"
    for split, n in (("train", 3), ("val", 2)):
        (data / split / f"{split}_img").mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 4), (10 * i, 100 if split == "val" else 0, 0)).save(
                data / split / f"{split}_img" / f"frame{i}.png")
    assert sizes.write_clip(data, tmp_path / "clip") == 5
    clip = sorted((tmp_path / "clip").iterdir())
    assert [p.name for p in clip] == [f"frame{i:05d}.png" for i in range(5)]
    pixels = [np.asarray(Image.open(p))[0, 0].tolist() for p in clip]
    assert pixels == [[0, 0, 0], [10, 0, 0], [20, 0, 0], [0, 100, 0], [10, 100, 0]]
    assert Image.open(clip[0]).size == (8 * sizes.UPSCALE, 4 * sizes.UPSCALE)
    with pytest.raises(SystemExit, match="frame0.png"):
        sizes.write_clip(tmp_path / "nothing", tmp_path / "clip2")


def test_the_real_data_gives_the_clip_length_the_docs_name() -> None:
    sizes = load_benchmark("sizes")
    assert len(sizes.split_frames(dance_root(), "train")) + len(sizes.split_frames(dance_root(), "val")) == 2517


def test_table_rows_name_the_cpu_and_the_baselines() -> None:
    sizes = load_benchmark("sizes")
    row = dict(size="128x64", minutes=5, epochs=7, train_minutes=4.9, psnr_mean=30.38, psnr_min=28.04,
               ssim_mean=0.956, copy_first_psnr=29.21, val_psnr_mean=28.954, val_copy_first_psnr=19.74,
               cpu="CPU X", precision="bf16", load_start=0.91)
    assert ("| 128x64 | 5 min | 7 | 4.9 | 30.38 | 28.04 | 0.956 | 29.21 | 28.95 | 19.74 | CPU X, bf16, 1-min load 0.91 |"
            in sizes.table([row]))
    older = {k: v for k, v in row.items() if not k.startswith("val_")}  # a row from before the val columns
    assert "| 29.21 | n/a | n/a | CPU X" in sizes.table([older])


def test_rows_are_kept_per_size_and_budget() -> None:
    sizes = load_benchmark("sizes")
    r = lambda size, minutes, psnr: dict(size=size, minutes=minutes, psnr_mean=psnr)  # noqa: E731
    rows = sizes.merged([r("256x128", 30, 29.0), r("128x64", 5, 30.0)], r("256x128", 60, 31.0))
    assert [(x["size"], x["minutes"]) for x in rows] == [("128x64", 5), ("256x128", 30), ("256x128", 60)]
    again = sizes.merged(rows, r("256x128", 60, 32.0))  # the same size and budget: replaced
    assert [x["psnr_mean"] for x in again] == [30.0, 29.0, 32.0]
    assert sizes.row_name("256x128", 60.0) == "256x128_60min"


@pytest.mark.slow
def test_a_trained_run_is_scored_on_the_test_split_and_its_last_validation(trained_run, synth_root, tmp_path) -> None:
    sizes = load_benchmark("sizes")
    trainer, run_dir, _ = trained_run
    row = sizes.score_run(synth_root, run_dir, tmp_path / "out")
    last = [r for r in csv.DictReader((run_dir / "metrics.csv").open()) if r["val_psnr"]][-1]
    assert row["val_psnr_mean"] == pytest.approx(float(last["val_psnr"]), abs=1e-3)
    summary = json.loads((tmp_path / "out" / "eval_test" / "summary.json").read_text())
    assert row["psnr_mean"] == pytest.approx(summary["mean_psnr"], abs=1e-3)
    assert row["copy_first_psnr"] == pytest.approx(summary["baselines"]["copy_first"], abs=1e-3)
    cfg = trainer.cfg
    val = load_split(synth_root, "val", (cfg.data.frame_H, cfg.data.frame_W))
    copy = baseline_psnrs(to_float(val.frames[:min(cfg.data.val_vi_len, len(val))]))["copy_first"]
    assert row["epochs"] == cfg.optim.num_epoch and row["val_copy_first_psnr"] == pytest.approx(copy, abs=1e-3)
    with pytest.raises(SystemExit, match="--score-only 64x32_9min: .*run folder not found"):
        sizes.score_again([dict(size="64x32", minutes=9)], "64x32", 9, tmp_path, tmp_path)
    with pytest.raises(SystemExit, match="no 64x32_5min row"):
        sizes.score_again([], "64x32", 5, tmp_path, tmp_path)
    work = tmp_path / "work"  # --score-only's layout: WORK/run_WxH_Mmin and WORK/data_WxH
    work.mkdir()
    (work / "run_64x32_5min").symlink_to(run_dir)
    (work / "data_64x32").symlink_to(synth_root)
    old = dict(size="64x32", minutes=5, psnr_mean=0.0, cpu="CPU X", precision="bf16", load_start=0.5, prepare_seconds=3.0)
    again = sizes.score_again([old], "64x32", 5, work, tmp_path / "results")
    assert again["psnr_mean"] == pytest.approx(row["psnr_mean"], abs=1e-3)
    assert (again["cpu"], again["load_start"], again["prepare_seconds"]) == ("CPU X", 0.5, 3.0)
