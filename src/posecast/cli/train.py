"""`posecast train`: train on a dataset in the lab layout, resume a run, or launch several processes."""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config as cfgmod
from ..training.run import Run
from .common import add_config_overrides, config_from, config_overrides

if TYPE_CHECKING:
    from ..data.provenance import Provenance


def add_train(subparsers: Any) -> None:
    t = subparsers.add_parser("train", help="train on a dataset in the lab layout")
    t.add_argument("--data", help="dataset root (train/, val/) [lab: --DR]")
    t.add_argument("--config", help="a YAML config file of your own (the form of the recipes in posecast/recipes/)")
    t.add_argument("--preset", choices=cfgmod.PRESETS, help="a recipe shipped with posecast (default lab; "
                   "best: the quality recipe, small: minutes on a laptop)")
    t.add_argument("--out", help="run folder [lab: --save_root] (default runs/PRESET-TIME)")
    t.add_argument("--resume", help="run folder (or its checkpoint) to continue [lab: --ckpt_path]")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... [lab: --device/--gpu]")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--devices", type=int, default=1, help="processes (GPUs, or CPU processes with gloo) per node")
    t.add_argument("--num-nodes", type=int, default=1, help="machines (run the same command on each, with --node-rank)")
    t.add_argument("--node-rank", type=int, default=0)
    t.add_argument("--master-addr", default="127.0.0.1", help="address of node 0 (multi-node)")
    t.add_argument("--master-port", type=int, default=29511)
    add_config_overrides(t)
    t.set_defaults(func=cmd_train)


def _default_run_dir(cfg: cfgmod.Config) -> Path:
    return Path("runs") / f"{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}"


def _launch_distributed(args: argparse.Namespace) -> None:
    """Re-run this command under torchrun (torch.distributed.run), one process per device."""
    argv = list(args.raw_argv)
    if not args.out and not args.resume:  # every rank must write to the same run folder
        argv += ["--out", str(_default_run_dir(config_from(args)))]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.devices}",
           f"--nnodes={args.num_nodes}", f"--node_rank={args.node_rank}",
           f"--master_addr={args.master_addr}", f"--master_port={args.master_port}",
           "-m", "posecast.cli"] + argv
    env = dict(os.environ, POSECAST_LAUNCHED="1")
    rc = subprocess.call(cmd, env=env)
    if rc:
        raise SystemExit(rc)


def _resumed(args: argparse.Namespace) -> tuple[Path, cfgmod.Config, str]:
    """The run folder, config and dataset of `train --resume RUN_OR_CKPT`."""
    from ..training.resume import run_state

    run_dir = Path(args.resume)
    if run_dir.is_file():  # a checkpoint path: its run folder is two levels up
        run_dir = run_dir.parent.parent
        if Path(args.resume).resolve() != Run(run_dir).last_ckpt.resolve():
            raise cfgmod.ConfigError(f"--resume {args.resume}: a run resumes from its own "
                                     "checkpoints/last.ckpt; give the run folder")
    state = run_state(run_dir, overrides=config_overrides(args),
                      warn=lambda message: print(f"posecast train: {message}", file=sys.stderr))
    data = args.data or state.data
    if not data:
        raise cfgmod.ConfigError(f"--resume: give --data (no {Run(run_dir).data_file.name} in {run_dir})")
    return run_dir, state.config, data


def _sized_for(cfg: cfgmod.Config, data: str, chosen: bool) -> tuple[cfgmod.Config, Provenance | None]:
    """The config at the frame size `posecast prepare` wrote the dataset in (its report), or a
    ConfigError when the size was ``chosen`` (a flag, the user's file, the run resumed) and differs."""
    from ..data.provenance import read_provenance  # here: `posecast --help` loads no torch

    prov = read_provenance(data)
    here = (cfg.data.frame_W, cfg.data.frame_H)
    if prov is None or prov.size == here:
        return cfg, prov
    if chosen:
        raise cfgmod.ConfigError(f"data.frame_W x data.frame_H: {here[0]}x{here[1]} here, but {data} was prepared at "
                                 f"{prov.size[0]}x{prov.size[1]} ({prov.report}); leave the size to the dataset, "
                                 f"or prepare it again with --size {here[0]}x{here[1]}")
    return cfgmod.override(cfg, frame_W=prov.size[0], frame_H=prov.size[1]).validate(), prov


def _size_chosen(args: argparse.Namespace) -> bool:
    """Whether the frame size is the user's: a flag, or a field of their own config file."""
    if {"frame_H", "frame_W"} & set(config_overrides(args)):
        return True
    own = cfgmod.read_yaml(Path(args.config)).get("data") if args.config else None
    return isinstance(own, dict) and bool({"frame_H", "frame_W"} & set(own))


def _recipe_text(args: argparse.Namespace, cfg: cfgmod.Config) -> str:
    """What is trained, for the first line: ``recipe best``, or ``my.yaml (over recipe small)``."""
    return f"{args.config} (over recipe {cfg.preset})" if args.config and not args.resume else f"recipe {cfg.preset}"


def _versus_copying(trainer: Any, row: dict[str, Any]) -> None:
    """The validation rollout's PSNR beside copying frame 0 forward, with a warning in words when
    the model does not beat it (it has then learnt nothing about the person)."""
    import torch

    from ..analysis.baselines import copy_first
    from ..perf import to_float

    copy = float(torch.cat([copy_first(to_float(s.frames[:trainer.val_len])) for s in trainer.val_seqs]).mean())
    psnr, which = row.get("val_psnr"), "the last epoch's validation rollout"
    if psnr is None and math.isfinite(trainer.best_psnr):  # no validation in the last epoch (runtime.val_every)
        psnr, which = trainer.best_psnr, "the best validation rollout"
    if psnr is None:
        trainer.log(f"no validation rollout ran; copying frame 0 scores {copy:.2f} dB on the validation frames")
        return
    trainer.log(f"{which}: {psnr:.2f} dB PSNR; copying frame 0 forward: {copy:.2f} dB ({psnr - copy:+.2f} dB)")
    if psnr <= copy and trainer.dist.main:
        advice = "train longer" + ("" if trainer.cfg.preset == "best" else ", or with the quality recipe (--preset best)")
        print(f"posecast train: warning: the model does not beat copying frame 0 ({psnr:.2f} dB against "
              f"{copy:.2f} dB): it has not learnt to draw the person from the poses; {advice}", file=sys.stderr)


def _check_minutes(args: argparse.Namespace) -> None:
    """--minutes (optim.minutes, a flag like every config field): for a new run on one process."""
    minutes = config_overrides(args).get("minutes")
    if minutes is None:
        return
    if args.resume:
        raise cfgmod.ConfigError("--minutes: a resumed run keeps its epoch count (optim.num_epoch in its "
                                 "config.yaml); give --num_epoch to change it")
    if args.devices * args.num_nodes > 1:
        raise cfgmod.ConfigError("--minutes: measured on one process only; with --devices or --num-nodes, "
                                 "give --num_epoch")
    if not minutes > 0:
        raise cfgmod.ConfigError(f"--minutes: a training budget > 0, got {minutes:g}")


def _budget(args: argparse.Namespace, cfg: cfgmod.Config) -> float | None:
    """The minutes to plan a new run's epochs for: optim.minutes (--minutes, or the recipe's), unless
    --num_epoch is given without --minutes (a resumed run keeps its count)."""
    overrides = config_overrides(args)
    if args.resume or ("num_epoch" in overrides and "minutes" not in overrides):
        return None
    return cfg.optim.minutes


def cmd_train(args: argparse.Namespace) -> None:
    _check_minutes(args)
    if args.devices * args.num_nodes > 1 and "LOCAL_RANK" not in os.environ:
        return _launch_distributed(args)
    if args.resume:
        run_dir, cfg, data = _resumed(args)
        cfg, prov = _sized_for(cfg, data, chosen=True)
    else:
        if not args.data:
            raise cfgmod.ConfigError("--data DIR is required (a dataset in the lab layout)")
        cfg, prov = _sized_for(config_from(args), args.data, _size_chosen(args))
        run_dir = Path(args.out) if args.out else _default_run_dir(cfg)
        data = args.data
        if Run(run_dir).last_ckpt.exists():  # never start over a run by mistake
            raise cfgmod.ConfigError(f"--out {run_dir} already holds a run (checkpoints/last.ckpt): continue "
                                     f"it with --resume {run_dir}, or choose another --out")
    import torch

    from ..perf import cpu_summary, resolve_precision
    from ..training.trainer import Trainer

    seqs: dict[str, Any] = {}
    hooks: dict[str, Any] = {}
    minutes = _budget(args, cfg)
    if minutes is not None:
        from ..training.budget import Replan, plan_epochs

        cfg, plan = plan_epochs(cfg, data, minutes, device=args.device)
        seqs = {"train_seq": plan.train_seq, "val_seqs": plan.val_seqs}  # loaded once
        hooks = {"after_epoch": Replan(plan)}  # the count again after the first epoch, timed whole
        print(plan.describe())
    trainer = Trainer(cfg, data, run_dir, device=args.device, progress=not args.no_progress, **seqs)
    trainer.run.record_data(data)  # after the data loaded: a bad dataset leaves no run folder
    t = cfg.runtime
    prec = resolve_precision(t.precision, trainer.device)
    where = f"{data} ({prov.describe()})" if prov else data
    trainer.log(f"training {_recipe_text(args, cfg)} on {where} into {run_dir}: {prec}"
                f"{' (precision auto)' if t.precision == 'auto' else ''}, "
                f"{'channels_last' if t.channels_last else 'NCHW'}, {torch.get_num_threads()} threads "
                f"on {cpu_summary() if trainer.device.type == 'cpu' else trainer.device}")
    row = trainer.fit(resume=bool(args.resume), **hooks)
    _versus_copying(trainer, row)
    trainer.log(f"done: checkpoints in {trainer.run.ckpt_dir}, metrics in {trainer.run.metrics_path}")
