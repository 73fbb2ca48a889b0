"""Quality benchmark: train a config on the real train split for a fixed budget, roll out the val
sequence (629 predicted frames from frame 0 and the poses) and compare with copying frame 0.

    python benchmarks/quality.py --config best --minutes 60

Prints one table and writes it (and JSON) to benchmarks/results/, with the PSNR-per-frame plot and
the GIF. The figure reported is the *last* checkpoint (no selection on the val sequence); the
best-by-val epoch is shown beside it, labelled as such.

    python benchmarks/quality.py --config best --minutes 60 --out RUN --rescore

scores the finished run in RUN again, without training: its training fields must be those of the
config given, its inference fields (inference.*) may differ. The run saves a checkpoint every epoch
for the marks (about 9 GB in the best recipe's hour); once scored, only those the marks scored stay,
with last.ckpt and best.ckpt (the others' times in checkpoints/epoch_times.json, so a rescore at
other marks says when it needs a deleted one). --keep-checkpoints keeps them all.

    python benchmarks/quality.py --config best --minutes 60 --plan-only

prints what a budgeted run would plan here (the step and validation times measured, the epochs
that fit) and trains nothing: the cost of a config on this CPU, e.g. of a narrower U-Net.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from posecast import config as cfgmod, perf
from posecast.analysis.baselines import median_frame
from posecast.analysis.plots import plot_psnr_per_frame
from posecast.data.lab import DataError, VideoSequence, load_split
from posecast.inference.load import load_model, rollout_weights
from posecast.io.atomic import atomic_write_text
from posecast.io.checkpoint import load_checkpoint
from posecast.io.video import side_by_side, write_gif
from posecast.metrics import psnr, ssim
from posecast.perf import to_float
from posecast.rollout import validation_rollout
from posecast.training.run import Run
from posecast.training.budget import Replan, plan_epochs
from posecast.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dance"


def copy_first_baseline(seq, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    truth = to_float(seq.frames[1:T])
    first = to_float(seq.frames[:1]).expand_as(truth)
    return psnr(first, truth), ssim(first, truth)


STAMPS = "epoch_times.json"  # in checkpoints/: the epochs whose checkpoints were pruned, with their training times


def epoch_stamps(run: Run) -> list[tuple[float, int, Path | None]]:
    """(training seconds, epoch, checkpoint) of every epoch the run saved, oldest first; the
    checkpoint is None for an epoch ``prune_checkpoints`` deleted."""
    stamps = {}
    record = run.ckpt_dir / STAMPS
    if record.exists():
        stamps = {e["name"]: (float(e["elapsed"]), int(e["epoch"]), None) for e in json.loads(record.read_text())}
    for path in run.epoch_ckpts():
        state = torch.load(path, map_location="cpu", weights_only=True)
        stamps[path.name] = (float(state["elapsed"]), int(state["epoch"]), path)
    return sorted(stamps.values(), key=lambda s: (s[0], s[1]))


def time_to_quality(stamps: list[tuple[float, int, Path | None]], val, T: int, cfg,
                    marks: list[float]) -> tuple[list[dict], set[Path]]:
    """For each mark (minutes of training), the val rollout of the last epoch checkpoint whose
    training time was within it (``epoch_stamps`` of one run's checkpoints, ``per_save: 1``); and
    the checkpoints scored. ValueError when that checkpoint was pruned."""
    rows, scores = [], {}
    for mark in marks:
        within = [s for s in stamps if s[0] <= mark * 60]
        if not within:
            rows.append({"minutes": mark, "epoch": None})
            continue
        elapsed, epoch, path = within[-1]
        if path is None:
            raise ValueError(f"the mark at {mark:g} min needs the checkpoint of epoch {epoch}, deleted after the "
                             f"run was scored (--keep-checkpoints keeps them): rescore with the run's own marks")
        if path not in scores:  # two marks may land on the same checkpoint
            model, _ = load_model(path, use_ema=cfg.inference.use_ema)
            ev = validation_rollout(model, [val], cfg, length=T)
            scores[path] = {"psnr_mean": round(ev.mean_psnr, 3), "psnr_min": round(ev.min_psnr, 3),
                            "ssim_mean": round(ev.mean_ssim, 4)}
        rows.append({"minutes": mark, "epoch": epoch, "train_minutes": round(elapsed / 60, 2), **scores[path]})
    return rows, set(scores)


def prune_checkpoints(run: Run, stamps: list[tuple[float, int, Path | None]], keep: set[Path]) -> int:
    """Delete the epoch checkpoints of ``stamps`` (``epoch_stamps(run)``) not in ``keep`` (last.ckpt
    and best.ckpt are not epoch checkpoints), recording each one's epoch and training time in
    checkpoints/epoch_times.json first (atomically: a kill leaves the old record or the new one);
    returns how many were deleted. A 60-minute run saves about 170 (9 GB for the best recipe)."""
    stamps = [(path, elapsed, epoch) for elapsed, epoch, path in stamps if path is not None and path not in keep]
    record = run.ckpt_dir / STAMPS
    old = json.loads(record.read_text()) if record.exists() else []
    atomic_write_text(record, json.dumps(old + [{"name": p.name, "epoch": e, "elapsed": t} for p, t, e in stamps], indent=1))
    for path, _, _ in stamps:
        path.unlink()
    return len(stamps)


# the runtime fields that change what a run learns (or its budget)
TRAINING_RUNTIME = ("runtime.seed", "runtime.max_time", "runtime.precision", "runtime.channels_last")


def finished_run(out: Path, cfg: cfgmod.Config, minutes: float | None = None) -> tuple[float, int]:
    """The training time (s, the last checkpoint's) and epochs of the finished run in ``out``, whose
    config must equal ``cfg`` in its data, model and optim and schedule fields and in TRAINING_RUNTIME
    (ValueError otherwise); inference.*, data.val_vi_len and the other runtime fields (threads,
    saving, validation) may differ, and with ``minutes`` (a budget) optim.num_epoch."""
    last = Run(out).last_ckpt
    if not last.exists():
        raise ValueError(f"{out}: no finished run to rescore (no checkpoints/last.ckpt)")
    state = load_checkpoint(last)  # CheckpointError (a ValueError) for an unreadable file
    if state.get("config") is None or "elapsed" not in state:
        raise ValueError(f"{last}: not a checkpoint of a posecast run (no config or training time)")
    ran = cfgmod.from_dict(state["config"])
    ignore = ("data.val_vi_len",)  # how much of val is scored: not training
    if minutes:  # the epoch count was measured for the budget when it trained
        ignore += ("optim.num_epoch", "optim.minutes")
    differ = cfgmod.config_diff(ran, cfg, sections=("data", "model", "optim", "schedule"), ignore=ignore)
    differ.update({k: v for k, v in cfgmod.config_diff(ran, cfg, sections=("runtime",)).items()
                   if k in TRAINING_RUNTIME})
    if differ:
        raise ValueError(f"{out} was trained otherwise than the config given: "
                         + ", ".join(f"{k} {a!r} there, {b!r} here" for k, (a, b) in differ.items()))
    return float(state["elapsed"]), int(state["epoch"])


def validated_with(state: dict) -> str:
    """How training's validation scored a checkpoint (a rescore may roll out other weights)."""
    return f", as scored in training, {rollout_weights(cfgmod.from_dict(state['config']))} weights"


def ttq_table(res: dict) -> str:
    """Time to quality: the val PSNR after each training-time mark, beside the baselines."""
    lines = ["| training time (budget) | epochs done | trained (min) | mean PSNR | min PSNR | SSIM |",
             "|---|---|---|---|---|---|"]
    for r in res["time_to_quality"]:
        if r["epoch"] is None:
            lines.append(f"| {r['minutes']:g} min | no epoch finished | | | | |")
        else:
            lines.append(f"| {r['minutes']:g} min | {r['epoch']} | {r['train_minutes']:.1f} | {r['psnr_mean']:.2f} | "
                         f"{r['psnr_min']:.2f} | {r['ssim_mean']:.3f} |")
    lines.append(f"| copying frame 0 | | | {res['copy_first_psnr']:.2f} | | {res['copy_first_ssim']:.3f} |")
    lines.append(f"| the median frame | | | {res['median_frame_psnr']:.2f} | | |")
    return "\n".join(lines)


def prepare(args: argparse.Namespace) -> tuple[cfgmod.Config, VideoSequence, VideoSequence]:
    """The benchmark's config (``configure``), the train and the val sequence (read once, the
    Trainer takes them); fails with ConfigError, DataError, another ValueError or OSError before
    any training."""
    cfg = configure(args)
    size = (cfg.data.frame_H, cfg.data.frame_W)
    return cfg, load_split(args.data, "train", size), load_split(args.data, "val", size)


def configure(args: argparse.Namespace) -> cfgmod.Config:
    """The benchmark's config: --config, --set and the budget flags, validated (ConfigError or
    another ValueError, OSError for a missing file); reads no data."""
    import yaml

    cfg = cfgmod.load(args.config) if args.config.endswith((".yaml", ".yml")) else cfgmod.preset(args.config)
    sets = [s.split("=", 1) for s in args.set]
    bad = [s for s, kv in zip(args.set, sets) if len(kv) != 2]
    if bad:
        raise ValueError(f"--set takes FIELD=VALUE, got {bad[0]!r}")
    try:
        over = {k: yaml.safe_load(v) for k, v in sets}
    except yaml.YAMLError as exc:
        raise ValueError(f"--set: a value is not YAML: {exc}".replace("\n", " ")) from exc
    if args.epochs is not None:
        over["num_epoch"] = args.epochs
    if args.seed is not None:
        over["seed"] = args.seed
    over["val_vi_len"] = args.val_len
    over["per_save"] = 1  # a checkpoint per epoch, each with its training time: the time-to-quality curve
    return cfgmod.override(cfg, **over).validate()


def _plan_only(ap: argparse.ArgumentParser, cfg, train: VideoSequence, val: VideoSequence,
               minutes: float | None) -> dict:
    """--plan-only: the budget's measurement of this config here, printed; nothing trained."""
    if minutes is None:
        ap.exit(2, f"{ap.prog}: error: --plan-only needs --minutes (the config has no optim.minutes)\n")
    try:
        _, plan = plan_epochs(cfg, None, minutes, train_seq=train, val_seqs=[val])
    except ValueError as exc:
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    print(plan.describe())
    print(f"CPU: {perf.cpu_summary()}; {perf.resolve_precision(cfg.runtime.precision, 'cpu')}, "
          f"1-min load {os.getloadavg()[0]:.2f} after the measurement")
    return {"epochs": plan.epochs, "step_seconds": plan.step_seconds, "steps_per_epoch": plan.steps_per_epoch,
            "val_seconds": plan.val_seconds}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small", help="a YAML file or a recipe's name (best, small ...)")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--minutes", type=float, default=None,
                    help="training budget: the epochs that fit it here are measured first (posecast.training.budget)")
    ap.add_argument("--epochs", type=int, default=None, help="epoch budget (overrides num_epoch)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--val-len", type=int, default=630, help="frames of the val sequence rolled out")
    ap.add_argument("--out", default=None, help="run folder (default benchmarks/results/quality_runs/NAME)")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="config overrides (YAML values)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--marks", type=lambda v: [float(x) for x in v.split(",")], default=[10.0, 20.0, 30.0, 60.0],
                    help="training minutes at which the time-to-quality table scores the run (comma-separated)")
    ap.add_argument("--rescore", action="store_true",
                    help="no training: score the finished run in --out again (the config's inference fields may differ)")
    ap.add_argument("--plan-only", action="store_true",
                    help="measure the budget's step and validation times here, print the epochs that fit --minutes "
                         "(or the recipe's optim.minutes) and stop: nothing is trained or written")
    ap.add_argument("--keep-checkpoints", action="store_true",
                    help="keep every epoch's checkpoint (default: only those a mark scored, last.ckpt and best.ckpt)")
    args = ap.parse_args(argv)
    if args.rescore and not args.out:
        ap.error("--rescore needs --out (the finished run)")
    if args.plan_only and (args.rescore or args.epochs is not None):
        ap.error("--plan-only measures a budget: not with --rescore or --epochs")
    load_start = os.getloadavg()[0]  # before the data is read and the training starts
    budget_plan = None

    try:  # a wrong config, set or data folder: one line, not a traceback
        cfg, train, val = prepare(args)
    except (ValueError, OSError) as exc:  # ConfigError and DataError are ValueErrors
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    # the budget: --minutes, else the recipe's optim.minutes unless --epochs gives a count
    minutes = args.minutes if args.minutes is not None else (None if args.epochs is not None else cfg.optim.minutes)
    name = Path(args.config).stem
    if args.set:
        name += "+" + ",".join(args.set)
    out = Path(args.out) if args.out else Path(args.results) / "quality_runs" / name.replace("/", "_")
    if args.plan_only:
        return _plan_only(ap, cfg, train, val, minutes)
    if args.rescore:
        try:
            train_s, epochs = finished_run(out, cfg, minutes)
        except (ValueError, OSError) as exc:
            ap.exit(2, f"{ap.prog}: error: {exc}\n")
    else:
        if Run(out).ckpt_dir.exists():
            raise SystemExit(f"{out} exists: remove it or give --out (a benchmark trains from scratch)")
        if minutes is not None:  # the epochs that fit the budget here, measured; the cosine over them
            try:  # a budget too short for the config's schedule: one line
                cfg, plan = plan_epochs(cfg, None, minutes, train_seq=train, val_seqs=[val])
            except ValueError as exc:
                ap.exit(2, f"{ap.prog}: error: {exc}\n")
            budget_plan = {"epochs": plan.epochs, "step_seconds": round(plan.step_seconds, 4),
                           "steps_per_epoch": plan.steps_per_epoch, "val_seconds": round(plan.val_seconds, 2)}
            if not args.quiet:
                print(plan.describe())
        t0 = time.perf_counter()
        trainer = Trainer(cfg, args.data, out, progress=not args.quiet,
                          log=(lambda s: None) if args.quiet else print, train_seq=train, val_seqs=[val])
        replan = Replan(plan) if budget_plan is not None else None  # the count again after the first epoch
        trainer.fit(**({"after_epoch": replan} if replan else {}))
        train_s, epochs = time.perf_counter() - t0, trainer.epoch
        cfg = trainer.cfg  # the count the budget re-planned
        if replan is not None:
            budget_plan.update(replanned_epochs=replan.epochs, replan=replan.note)

    T = min(args.val_len, len(val))
    run = Run(out)
    model, _ = load_model(run.last_ckpt, use_ema=cfg.inference.use_ema)
    ev = validation_rollout(model, [val], cfg, length=T)
    base_p, base_s = copy_first_baseline(val, T)
    best_path = run.best_ckpt  # absent when no validation ran within the budget
    best_state = torch.load(best_path, map_location="cpu", weights_only=True) if best_path.exists() else None
    res = {
        "config": name, "epochs": epochs, "train_seconds": round(train_s, 1),
        "budget": f"{minutes:g} min" if minutes else f"{cfg.optim.num_epoch} epochs", "plan": budget_plan,
        "z": cfg.inference.z_infer, "mirror_average": cfg.inference.mirror_average, "frames": T - 1,
        "weights": rollout_weights(cfg),
        "psnr_mean": round(ev.mean_psnr, 3), "psnr_min": round(ev.min_psnr, 3), "ssim_mean": round(ev.mean_ssim, 4),
        "copy_first_psnr": round(float(base_p.mean()), 3), "copy_first_ssim": round(float(base_s.mean()), 4),
        "best_val_epoch": None if best_state is None else int(best_state["epoch"]),
        "best_val_psnr": None if best_state is None else round(float(best_state["best_psnr"]), 3),
        "torch_threads": torch.get_num_threads(), "load_avg_start": load_start, "rescored": args.rescore,
        "cpu": perf.cpu_summary(), "isa": perf.cpu_isa(),
        "precision": perf.resolve_precision(cfg.runtime.precision),
    }
    res["median_frame_psnr"] = round(float(median_frame(to_float(val.frames[:T])).mean()), 3)
    stamps = epoch_stamps(run)
    try:
        res["time_to_quality"], scored = time_to_quality(stamps, val, T, cfg, args.marks)
    except ValueError as exc:  # a rescore whose mark lands on a pruned checkpoint
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    if not args.rescore and not args.keep_checkpoints:
        prune_checkpoints(run, stamps, scored)
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
           + ("none (no validation ran) |" if best_state is None else
              f"{res['best_val_epoch']} ({res['best_val_psnr']:.2f}{validated_with(best_state) if args.rescore else ''}) |"))
    table = "\n".join([header, "|---" * (header.count("|") - 1) + "|", row])
    table += "\n\n" + ttq_table(res)
    print(table)
    when = ("when it was rescored (the training's load is not recorded here; its time is the last checkpoint's)"
            if args.rescore else "at the start")
    head = (f"`python benchmarks/quality.py {' '.join(argv or sys.argv[1:])}`\n\n"
            f"CPU: {res['cpu']}; {res['precision']}, {res['torch_threads']} threads, 1-min load "
            f"{res['load_avg_start']:.2f} {when}; inference: z {res['z']}, mirror averaging "
            f"{'on' if res['mirror_average'] else 'off'}, weights: {res['weights']}\n")
    print(head)
    (results / f"{stem}.md").write_text(f"{head}\n{table}\n")
    (results / f"{stem}.json").write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
