"""Ablation of the quality recipe: the best recipe with one option changed at a time, each trained
for the same epoch budget on the real train split with each of several seeds and scored by the
full val rollout (benchmarks/quality.py), plus the recipe's own rows.

    python benchmarks/ablation.py --epochs 6 --seeds 0,1,2,3 --jobs 2

A row gives the mean over seeds and the spread (the largest minus the smallest), and the paired
difference: each seed's variant minus the recipe's run of the same seed (the same initial weights and
draws where the option leaves them alike; an evaluation-only row rolls out the recipe's own
checkpoint of that seed otherwise), its mean and 95 % t interval over the n seeds both ran (n - 1
degrees of freedom). A variant's effect is called resolved when that interval excludes 0 and n is at
least 3; an unresolved row's interval is the range of effects its seeds cannot rule out. The budget
is in epochs, so a run's weights do not depend on how fast it ran: ``--jobs 2`` trains two variants
at a time at 1 thread each (on 2 cores), and the train-time column is then that of a shared CPU, not
a timing. Writes benchmarks/results/ablation.md (and .json).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import quality  # noqa: E402

# (label, overrides of the best recipe). The U-Net against the stacked decoder of the best_v1 recipe is
# compared at equal training time instead (the time-to-quality tables of docs/quality.md)
VARIANTS = [
    ("recipe (best)", []),
    ("the previous frame fed to the decoder too (model.prev_frame_cond: true)", ["prev_frame_cond=true"]),
    ("first frame = the clip's frame 0 in training (data.anchor: clip)", ["anchor=clip"]),
    ("raw pose images (model.pose_input: raw)", ["pose_input=raw"]),
    ("direct output, no mask over the first frame (model.output: direct)", ["output=direct"]),
    ("no flow: the mask over the first frame as it is (model.output: masked_first)", ["output=masked_first"]),
    ("no first frame's pose (model.first_pose_cond: false)", ["first_pose_cond=false"]),
    ("no GroupNorm in the U-Net (model.norm: none)", ["norm=none"]),
    ("the mask gated near the pose change (model.pose_gate: 3, which reads no neighbours' poses)",
     ["pose_gate=3", "pose_context=0"]),
    ("no zoom (data.zoom_prob: 0)", ["zoom_prob=0"]),
    ("no augmentation (no shift, mirror or zoom)", ["shift_x=0", "flip=false", "zoom_prob=0", "shift_mask=false"]),
    ("the pixels a shift or zoom filled in counted by the loss (data.shift_mask: false)", ["shift_mask=false"]),
    ("no neighbours' poses (model.pose_context: 0)", ["pose_context=0"]),
]
# evaluated on the recipe rows' checkpoints (no training): (label, z at inference, mirror averaging)
EVAL_ONLY = [
    ("z sampled from N(0, I) at inference instead of z = 0 (the recipe rows' checkpoints)", "prior", None),
    ("one rollout, not averaged with the mirrored one (inference.mirror_average: false; the recipe rows' "
     "checkpoints)", None, False),
]


def _train(config: str, data: str, epochs: int, seed: int, out: Path, sets: list[str], threads: int | None,
           reuse: bool = False) -> dict:
    """One variant and seed, in a fresh process (benchmarks/quality.py); its results JSON. With
    ``reuse``, a run of the same config, epochs and seed that finished in ``out`` before is read
    instead (an ablation stopped midway goes on where it stopped)."""
    results = out / "results"
    extra = [f"threads={threads}"] if threads else []
    if reuse and (done := finished_run(results, config, epochs, seed, ["val_every=1000", *sets, *extra])):
        return done
    cmd = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--config", config, "--data", data,
           "--epochs", str(epochs), "--seed", str(seed), "--quiet", "--out", str(out / "run"),
           "--results", str(results), "--marks", "1000", "--set", "val_every=1000", *sets, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(next(results.glob("*.json")).read_text())


def finished_run(results: Path, config: str, epochs: int, seed: int, sets: list[str]) -> dict | None:
    """The results JSON a finished run of benchmarks/quality.py left in ``results`` when it was this
    config (its name and overrides, as quality.py names them), epoch count and seed; else None."""
    from posecast import config as cfgmod

    name = Path(config).stem + ("+" + ",".join(sets) if sets else "")
    run_config = results.parent / "run" / "config.yaml"  # the run's own config: its seed
    if not results.is_dir() or not run_config.exists() or cfgmod.load(run_config).runtime.seed != seed:
        return None
    for path in sorted(results.glob("*.json")):
        done = json.loads(path.read_text())
        if done.get("config") == name and done.get("epochs") == epochs:
            return done
    return None


def summarise(label: str, sets: list[str], runs: list[dict]) -> dict:
    """The row of one variant: mean and spread over its seeds."""
    psnrs = [r["psnr_mean"] for r in runs]
    mean = lambda key: round(sum(r[key] for r in runs) / len(runs), 3)  # noqa: E731
    return {"variant": label, "overrides": " ".join(sets), "seeds": [r["seed"] for r in runs], "psnr_runs": psnrs,
            "psnr_mean": mean("psnr_mean"), "psnr_spread": round(max(psnrs) - min(psnrs), 3),
            "psnr_min": round(min(r["psnr_min"] for r in runs), 3), "ssim_mean": mean("ssim_mean"),
            "train_seconds": mean("train_seconds"), "copy_first_psnr": runs[0]["copy_first_psnr"],
            "copy_first_ssim": runs[0]["copy_first_ssim"], "cpu": runs[0]["cpu"], "precision": runs[0]["precision"]}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=lambda v: [int(s) for s in v.split(",")], default=[0, 1, 2, 3])
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (each at 1 thread when more than 1)")
    ap.add_argument("--config", default="best", help="a recipe's name or a YAML file")
    ap.add_argument("--data", default=str(quality.DEFAULT_DATA))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "ablation"), help="run folders (one per variant and seed)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--only", nargs="*", type=int, help="variant numbers to run, in that order (default all)")
    ap.add_argument("--reuse", action="store_true",
                    help="read the runs that finished in --runs before (same config, epochs, seed) instead of training them")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    if len(set(args.seeds)) < len(args.seeds):
        ap.error(f"--seeds: each seed once, got {','.join(map(str, args.seeds))}")
    if args.only and (bad := [k for k in args.only if not 0 <= k < len(VARIANTS)]):
        ap.error(f"--only: variant numbers are 0 to {len(VARIANTS) - 1}, got {bad}")
    picked = [(k, VARIANTS[k]) for k in dict.fromkeys(args.only)] if args.only else list(enumerate(VARIANTS))
    # every variant's config, then the data folder, checked before any run starts (one line, not a traceback)
    checks = [(f"variant {k} ({' '.join(sets)}): ", sets) for k, (_, sets) in picked] + [("", [])]
    for where, sets in checks:
        ns = argparse.Namespace(config=args.config, set=["val_every=1000", *sets], minutes=None,
                                epochs=args.epochs, seed=None, val_len=630, data=args.data)
        try:
            quality.configure(ns) if where else quality.prepare(ns)
        except (ValueError, OSError) as exc:
            ap.exit(2, f"{ap.prog}: error: {where}{exc}\n")
    tasks = [(k, seed) for k, _ in picked for seed in args.seeds]
    threads = 1 if args.jobs > 1 else None
    t0 = time.perf_counter()
    done, failed = {}, {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each run is its own process
        futures = {(k, seed): pool.submit(_train, args.config, args.data, args.epochs, seed,
                                          Path(args.runs) / f"v{k}_seed{seed}", VARIANTS[k][1], threads, args.reuse)
                   for k, seed in tasks}
        for key, f in futures.items():
            try:
                done[key] = f.result()
            except RuntimeError as exc:  # keep the others' results; report this one at the end
                failed[key] = str(exc)
                print(f"variant {key[0]} seed {key[1]} failed: {str(exc)[-500:]}", file=sys.stderr, flush=True)
    picked = [(k, v) for k, v in picked if all((k, seed) in done for seed in args.seeds)]
    rows = []
    for k, (label, sets) in picked:
        for seed in args.seeds:
            done[(k, seed)]["seed"] = seed
        rows.append(summarise(label, sets, [done[(k, seed)] for seed in args.seeds]))
        print(f"{label}: {rows[-1]['psnr_mean']:.2f} dB (seeds {rows[-1]['psnr_runs']})", flush=True)
    if picked and picked[0][0] == 0:  # the same weights, evaluated otherwise (the recipe's row first)
        rows += [eval_only_row(rows[0], args, *spec) for spec in EVAL_ONLY]
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    meta = {"epochs": args.epochs, "seeds": args.seeds, "jobs": args.jobs, "wall_s": round(time.perf_counter() - t0, 1),
            "failed": {f"v{k}_seed{seed}": msg[-2000:] for (k, seed), msg in failed.items()}}
    (results / "ablation.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    text = (f"CPU: {rows[0]['cpu'] if rows else ''}; {rows[0]['precision'] if rows else ''}; "
            f"{args.jobs} run(s) at a time{' at 1 thread each' if threads else ''}\n\n"
            + table(rows, args.epochs, args.seeds, args.jobs))
    (results / "ablation.md").write_text(text)
    print(text)
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: {sorted(failed)}; the table holds the variants that finished")
    return rows


def eval_only_row(base: dict, args: argparse.Namespace, label: str, z_mode: str | None, mirror: bool | None) -> dict:
    """A row of the recipe rows' checkpoints rolled out with ``z_mode`` and ``mirror`` (None: as
    the recipe states), the seed's noise where z is sampled."""
    from posecast.data.lab import load_split
    from posecast.inference.load import load_model
    from posecast.rollout import validation_rollout
    from posecast.training.run import Run

    runs = []
    for seed in args.seeds:
        model, cfg = load_model(Run(Path(args.runs) / f"v0_seed{seed}" / "run").last_ckpt)
        val = load_split(args.data, "val", (cfg.data.frame_H, cfg.data.frame_W))
        ev = validation_rollout(model, [val], cfg, length=len(val), seed=seed, z_mode=z_mode, mirror=mirror)
        runs.append({"seed": seed, "psnr_mean": round(ev.mean_psnr, 3), "psnr_min": round(ev.min_psnr, 3),
                     "ssim_mean": round(ev.mean_ssim, 4), "train_seconds": 0.0, "copy_first_psnr": base["copy_first_psnr"],
                     "copy_first_ssim": base["copy_first_ssim"], "cpu": base["cpu"], "precision": base["precision"]})
    return summarise(label, ["(evaluation only)"], runs)


MIN_PAIRED = 3  # seeds both ran before a paired interval can resolve an effect


def paired(row: dict, base: dict) -> tuple[int, float, float, float] | None:
    """The variant minus the recipe, seed by seed (the seeds both ran, matched by seed, not by
    position): their count n, the mean difference and its 95 % t interval; None under two."""
    from scipy import stats

    theirs = dict(zip(base["seeds"], base["psnr_runs"]))
    diffs = [p - theirs[s] for s, p in zip(row["seeds"], row["psnr_runs"]) if s in theirs]
    if len(diffs) < 2:
        return None
    n = len(diffs)
    mean = sum(diffs) / n
    sd = (sum((d - mean) ** 2 for d in diffs) / (n - 1)) ** 0.5
    half = float(stats.t.ppf(0.975, n - 1)) * sd / n ** 0.5
    return n, mean, mean - half, mean + half


def resolved(row: dict, base: dict) -> str:
    """``yes, better`` / ``yes, worse`` when the paired 95 % interval of at least MIN_PAIRED seeds
    excludes 0; else why not."""
    if row is base:
        return ""
    pair = paired(row, base)
    n = len(set(row["seeds"]) & set(base["seeds"]))
    if n < MIN_PAIRED:
        return f"no ({n} paired seed{'s' if n != 1 else ''}, {MIN_PAIRED} needed)"
    if pair[2] > 0 or pair[3] < 0:
        return f"yes, {'better' if pair[1] > 0 else 'worse'}"
    return "no"


def table(rows: list[dict], epochs: int, seeds: list[int], jobs: int = 1) -> str:
    """The Markdown table of ablation rows (the recipe's row first, when it was run)."""
    base = rows[0] if rows and not rows[0]["overrides"] else None
    lines = [f"`python benchmarks/ablation.py --epochs {epochs} --seeds {','.join(map(str, seeds))} --jobs {jobs}` "
             f"(each row trains the best recipe for {epochs} epochs on the train split with one change, once per "
             f"seed; val rollout of 629 frames)", "",
             "| variant | mean PSNR (dB) over seeds | per seed | vs recipe | paired, 95 % interval | resolved | min PSNR "
             "| SSIM | train time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        delta = "" if base is None or r is base else f"{r['psnr_mean'] - base['psnr_mean']:+.2f}"
        res = "" if base is None or r is base else resolved(r, base)
        pair = None if base is None or r is base else paired(r, base)
        interval = "" if pair is None else f"{pair[1]:+.2f} ({pair[2]:+.2f} to {pair[3]:+.2f}), n {pair[0]}"
        took = f"{r['train_seconds'] / 60:.1f} min" if r["train_seconds"] else "(none)"
        per = " / ".join(f"{p:.2f}" for p in r["psnr_runs"])
        lines.append(f"| {r['variant']} | {r['psnr_mean']:.2f} | {per} | {delta} | {interval} | {res} | {r['psnr_min']:.2f} | "
                     f"{r['ssim_mean']:.3f} | {took} |")
    if rows:
        lines += ["", f"copy frame 0 forward: {rows[0]['copy_first_psnr']:.2f} dB, SSIM {rows[0]['copy_first_ssim']:.3f}",
                  "", "paired: each seed's variant minus the recipe's run of the same seed, their mean and 95 % t "
                  "interval over the n seeds both ran (n - 1 degrees of freedom; the evaluation-only rows roll the "
                  f"recipe's own checkpoints out otherwise); resolved: that interval excludes 0, with n at least "
                  f"{MIN_PAIRED}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
