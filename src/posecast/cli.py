"""`posecast <command>`: thin wrappers over library calls."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import config as cfgmod

# The lab's flags that are spelled differently here (the rest keep the lab's names).
LAB_ALIASES = {"--DR": "--data", "--save_root": "--out", "--ckpt_path": "--resume", "--gpu": "--device"}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else kind(text)
    return parse


def _threads(text: str) -> int | str | None:
    if text.lower() in ("none", "null", "auto"):
        return None if text.lower() != "auto" else "auto"
    try:
        return _positive_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, auto or none, got {text!r}") from None


def _field_type(f: dataclasses.Field) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    if isinstance(default, bool):
        return {"type": _bool, "nargs": "?", "const": True}
    if isinstance(default, list):
        return {"type": int, "nargs": "+"}
    if f.name in ("clip_stride", "max_val_sequences"):
        return {"type": _none_or(int)}
    if f.name in ("grad_clip", "max_time"):
        return {"type": _none_or(float)}
    if f.name == "threads":
        return {"type": _threads}
    return {"type": type(default)}


def _add_config_overrides(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("config overrides (the lab's flag names; see the README's table)")
    for section in (cfgmod.DataConfig, cfgmod.ModelConfig, cfgmod.TrainConfig):
        for f in dataclasses.fields(section):
            # SUPPRESS: only flags given appear in args, so `--grad_clip none` can override 1.0
            g.add_argument(f"--{f.name}", dest=f"cfg_{f.name}", default=argparse.SUPPRESS, **_field_type(f))


def _config_from(args: argparse.Namespace) -> cfgmod.Config:
    cfg = cfgmod.load(args.config) if args.config else cfgmod.preset(args.preset or "lab")
    if args.config and args.preset:
        cfg = cfgmod.from_dict({**cfg.to_dict(), "preset": args.preset})
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_")}
    return cfgmod.override(cfg, **overrides).validate() if overrides else cfg.validate()


def _default_run_dir(cfg: cfgmod.Config) -> Path:
    return Path("runs") / f"{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}"


# -- commands ---------------------------------------------------------------------------------
def cmd_synth(args: argparse.Namespace) -> None:
    from .data.synth import write_synthetic_dataset

    out = write_synthetic_dataset(args.out_dir, seed=args.seed, height=args.height, width=args.width,
                                  train_sequences=args.train_sequences, train_len=args.train_len,
                                  val_len=args.val_len, test_sequences=args.test_sequences,
                                  test_len=args.test_len, progress=True)
    print(f"synthetic dataset written to {out}")


def _launch_distributed(args: argparse.Namespace) -> None:
    """Re-run this command under torchrun (torch.distributed.run), one process per device."""
    import os
    import subprocess

    argv = list(args.raw_argv)
    if not args.out and not args.resume:  # every rank must write to the same run folder
        argv += ["--out", str(_default_run_dir(_config_from(args)))]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.devices}",
           f"--nnodes={args.num_nodes}", f"--node_rank={args.node_rank}",
           f"--master_addr={args.master_addr}", f"--master_port={args.master_port}",
           "-m", "posecast.cli"] + argv
    env = dict(os.environ, POSECAST_LAUNCHED="1")
    rc = subprocess.call(cmd, env=env)
    if rc:
        raise SystemExit(rc)


def cmd_train(args: argparse.Namespace) -> None:
    import os

    from .training.trainer import Trainer

    if args.devices * args.num_nodes > 1 and "LOCAL_RANK" not in os.environ:
        return _launch_distributed(args)

    if args.resume:
        run_dir = Path(args.resume)
        if run_dir.is_file():  # a checkpoint path: its run folder is two levels up
            run_dir = run_dir.parent.parent
            if Path(args.resume).resolve() != (run_dir / "checkpoints" / "last.ckpt").resolve():
                raise cfgmod.ConfigError(f"--resume {args.resume}: a run resumes from its own "
                                         "checkpoints/last.ckpt; give the run folder")
        cfg = _resume_config(run_dir, args)
        data = args.data or _saved_data(run_dir)
    else:
        if not args.data:
            raise cfgmod.ConfigError("--data DIR is required (a dataset in the lab layout)")
        cfg = _config_from(args)
        run_dir = Path(args.out) if args.out else _default_run_dir(cfg)
        data = args.data
        if (run_dir / "checkpoints" / "last.ckpt").exists():  # never start over a run by mistake
            raise cfgmod.ConfigError(f"--out {run_dir} already holds a run (checkpoints/last.ckpt): continue "
                                     f"it with --resume {run_dir}, or choose another --out")
    import torch

    from .perf import cpu_summary, resolve_precision
    from .training.checkpoint import atomic_write_bytes

    trainer = Trainer(cfg, data, run_dir, device=args.device, progress=not args.no_progress)
    run_dir.mkdir(parents=True, exist_ok=True)  # after the data loaded: a bad dataset leaves no run folder
    atomic_write_bytes(run_dir / "data_path.txt", lambda f: f.write(str(Path(data).resolve()).encode()))
    t = cfg.train
    prec = resolve_precision(t.precision, trainer.device)
    trainer.log(f"training {cfg.preset} preset on {data} into {run_dir}: {prec}"
                f"{' (precision auto)' if t.precision == 'auto' else ''}, "
                f"{'channels_last' if t.channels_last else 'NCHW'}, {torch.get_num_threads()} threads "
                f"on {cpu_summary() if trainer.device.type == 'cpu' else trainer.device}")
    trainer.fit(resume=bool(args.resume))
    trainer.log(f"done: checkpoints in {run_dir / 'checkpoints'}, metrics in {run_dir / 'metrics.csv'}")


def _saved_data(run_dir: Path) -> str:
    p = run_dir / "data_path.txt"
    text = p.read_bytes().decode().strip() if p.is_file() else ""
    if not text:
        raise cfgmod.ConfigError(f"--resume: give --data (no data_path.txt in {run_dir})")
    return text


def _resume_config(run_dir: Path, args: argparse.Namespace) -> cfgmod.Config:
    """The config of the run to resume, checked against its last checkpoint before any data is read.

    config.yaml may be empty when a run was killed while writing it: the checkpoint's copy is used then.
    """
    from .training.checkpoint import check_resumable, load_checkpoint, remove_stale_temp_files

    last = run_dir / "checkpoints" / "last.ckpt"
    state = load_checkpoint(last) if last.exists() else None
    saved = run_dir / "config.yaml"
    cfg = None
    if saved.is_file() and saved.stat().st_size:
        try:
            cfg = cfgmod.load(saved)
        except cfgmod.ConfigError:
            if state is None:
                raise
    if cfg is None:
        if state is None:
            raise cfgmod.ConfigError(f"--resume {args.resume}: no config.yaml (or an empty one) and no "
                                     f"checkpoint in {run_dir}: nothing to resume, start a new run")
        print(f"posecast train: {saved} is missing or unreadable; using the config saved in {last}",
              file=sys.stderr)
        cfg = cfgmod.from_dict(state["config"])
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_")}
    cfg = cfgmod.override(cfg, **overrides).validate() if overrides else cfg.validate()
    if state is not None:
        check_resumable(last, state, cfg.to_dict())
    remove_stale_temp_files(run_dir / "checkpoints")  # left by a run killed while saving
    return cfg


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.evaluate import evaluate

    out = args.out or str(Path(args.checkpoint).resolve().parent.parent / f"eval_{args.split}")
    s = evaluate(args.checkpoint, args.data, out, split=args.split, length=args.length, samples=args.samples,
                 z_mode=args.z, seed=args.seed, device=args.device, video=not args.no_video,
                 precision=args.precision)
    print(f"{args.split}: mean PSNR {s['mean_psnr']:.2f} dB (min frame {s['min_psnr']:.2f}), "
          f"SSIM {s['mean_ssim']:.4f} over {s['frames'] - 1} predicted frames x {len(s['sequences'])} sequence(s)")
    b = s["baselines"]
    print(f"  beside: copying frame 0 {b['copy_first']:.2f} dB, the median frame {b['median_frame']:.2f} dB")
    if s["samples"] > 1:
        print(f"best of {s['samples']}: PSNR {s['best_of_n_psnr']:.2f} dB, SSIM {s['best_of_n_ssim']:.4f}")
    print(f"written to {out}")


def cmd_predict(args: argparse.Namespace) -> None:
    from .evaluation.evaluate import predict_files

    if not args.test_data and not (args.first_frame and args.poses):  # a usage error, not a traceback
        raise cfgmod.ConfigError("give --first-frame FILE and --poses DIR, or --test-data DIR")
    r = predict_files(args.checkpoint, args.out, first_frame=args.first_frame, poses=args.poses,
                      test_data=args.test_data, z_mode=args.z, seed=args.seed, device=args.device,
                      precision=args.precision)
    print(f"predicted {', '.join(r['sequences'])} into {r['out_dir']}")
    if "submission" in r:
        print(f"submission: {r['submission']}")


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(Path(args.out), minutes=args.minutes, seed=args.seed)


# -- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="posecast", description="Pose-conditioned video prediction with a conditional VAE.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a synthetic dancer dataset in the lab layout")
    s.add_argument("out_dir")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--height", type=int, default=32)
    s.add_argument("--width", type=int, default=64)
    s.add_argument("--train-sequences", type=int, default=3)
    s.add_argument("--train-len", type=int, default=200)
    s.add_argument("--val-len", type=int, default=120)
    s.add_argument("--test-sequences", type=int, default=1)
    s.add_argument("--test-len", type=int, default=120)
    s.set_defaults(func=cmd_synth)

    t = sub.add_parser("train", help="train on a dataset in the lab layout")
    t.add_argument("--data", help="dataset root (train/, val/) [lab: --DR]")
    t.add_argument("--config", help="YAML config (configs/*.yaml)")
    t.add_argument("--preset", choices=sorted(cfgmod.PRESETS), help="start from this preset")
    t.add_argument("--out", help="run folder [lab: --save_root] (default runs/PRESET-TIME)")
    t.add_argument("--resume", help="run folder (or its checkpoint) to continue [lab: --ckpt_path]")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... [lab: --device/--gpu]")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--devices", type=int, default=1, help="processes (GPUs, or CPU processes with gloo) per node")
    t.add_argument("--num-nodes", type=int, default=1, help="machines (run the same command on each, with --node-rank)")
    t.add_argument("--node-rank", type=int, default=0)
    t.add_argument("--master-addr", default="127.0.0.1", help="address of node 0 (multi-node)")
    t.add_argument("--master-port", type=int, default=29511)
    _add_config_overrides(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="per-frame PSNR/SSIM of validation or test rollouts")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--split", choices=["val", "test"], default="val")
    e.add_argument("--out", help="output folder (default RUN/eval_SPLIT)")
    e.add_argument("--length", type=_positive_int, help="frames per sequence (default the config's val_vi_len)")
    e.add_argument("--samples", type=_positive_int, default=1, help="rollouts per sequence with different z")
    e.add_argument("--z", choices=["prior", "zero"], help="z at inference (default: the config's z_infer)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cpu")
    e.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="rollout precision (default: the config's train.precision; auto: bf16 where native)")
    e.add_argument("--no-video", action="store_true", help="skip GIF/MP4")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="predict frames from a first frame and poses, or the lab's test layout")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--first-frame", help="the first frame (PNG)")
    r.add_argument("--poses", help="folder of pose images frame0.png, frame1.png, ...")
    r.add_argument("--test-data", help="dataset root with test/test_img, test/test_label (writes submission.csv)")
    r.add_argument("--z", choices=["prior", "zero"])
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cpu")
    r.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="rollout precision (default: the config's train.precision; auto: bf16 where native)")
    r.set_defaults(func=cmd_predict)

    d = sub.add_parser("demo", help="synthesise data, train the small preset a few minutes, evaluate")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--minutes", type=float, default=4.0, help="training budget")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)

    from . import cli_analysis

    for name in ("plot", "report", "study"):
        cli_analysis.register(sub, name)
    from .poses import cli as poses_cli

    poses_cli.add_parser(sub)
    from .app import cli as app_cli
    from .data import prepare_cli
    from .inference import animate_cli

    for own_video in (prepare_cli, animate_cli, app_cli):  # issue 15: prepare, animate, app
        own_video.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [LAB_ALIASES.get(a, a) for a in argv]
    args = build_parser().parse_args(argv)
    args.raw_argv = argv
    # before any tensor is allocated: keeps glibc from returning activation buffers to the kernel
    # after every step (measured: 1.16 M page faults and 1.8 s system time per lab training step)
    from .runtime import tune_allocator

    tune_allocator()
    from .data.lab import DataError
    from .training.checkpoint import CheckpointError
    from .training.trainer import NonFiniteLossError

    try:
        rc = args.func(args)
    except (DataError, cfgmod.ConfigError, CheckpointError, NonFiniteLossError) as exc:
        print(f"posecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(f"posecast {args.command}: error: no permission to write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            print(f"posecast {args.command}: error: disk full writing {exc.filename or ''}; earlier files are "
                  "intact (every file is written to a temporary name and renamed)", file=sys.stderr)
            return 2
        if exc.filename is None:
            raise
        why = {17: "a file is in the way of a folder", 20: "a file is in the way of a folder",
               30: "read-only file system"}.get(exc.errno or 0)
        if why:
            print(f"posecast {args.command}: error: cannot write {exc.filename}: {why}"
                  " (choose another output folder)", file=sys.stderr)
        else:
            print(f"posecast {args.command}: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"posecast {args.command}: interrupted; resume training with --resume RUN_DIR", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
