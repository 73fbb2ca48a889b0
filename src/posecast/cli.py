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


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else kind(text)
    return parse


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
    return {"type": type(default)}


def _add_config_overrides(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("config overrides (the lab's flag names; see the README's table)")
    for section in (cfgmod.DataConfig, cfgmod.ModelConfig, cfgmod.TrainConfig):
        for f in dataclasses.fields(section):
            g.add_argument(f"--{f.name}", dest=f"cfg_{f.name}", default=None, **_field_type(f))


def _config_from(args: argparse.Namespace) -> cfgmod.Config:
    cfg = cfgmod.load(args.config) if args.config else cfgmod.preset(args.preset or "lab")
    if args.config and args.preset:
        cfg = cfgmod.from_dict({**cfg.to_dict(), "preset": args.preset})
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
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


def cmd_train(args: argparse.Namespace) -> None:
    from .training.trainer import Trainer

    if args.resume:
        run_dir = Path(args.resume)
        if run_dir.is_file():  # a checkpoint path: its run folder is two levels up
            run_dir = run_dir.parent.parent
        saved = run_dir / "config.yaml"
        if not saved.exists():
            raise cfgmod.ConfigError(f"--resume {args.resume}: no config.yaml in {run_dir}")
        cfg = cfgmod.load(saved)
        overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
        cfg = cfgmod.override(cfg, **overrides).validate() if overrides else cfg
        data = args.data or _saved_data(run_dir)
    else:
        if not args.data:
            raise SystemExit("posecast train: --data DIR is required (a dataset in the lab layout)")
        cfg = _config_from(args)
        run_dir = Path(args.out) if args.out else _default_run_dir(cfg)
        data = args.data
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "data_path.txt").write_text(str(Path(data).resolve()))
    trainer = Trainer(cfg, data, run_dir, device=args.device, progress=not args.no_progress)
    print(f"training {cfg.preset} preset on {data} into {run_dir}")
    trainer.fit(resume=bool(args.resume))
    print(f"done: checkpoints in {run_dir / 'checkpoints'}, metrics in {run_dir / 'metrics.csv'}")


def _saved_data(run_dir: Path) -> str:
    p = run_dir / "data_path.txt"
    if not p.exists():
        raise SystemExit(f"--resume: give --data (no data_path.txt in {run_dir})")
    return p.read_text().strip()


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.evaluate import evaluate

    out = args.out or str(Path(args.checkpoint).resolve().parent.parent / f"eval_{args.split}")
    s = evaluate(args.checkpoint, args.data, out, split=args.split, length=args.length, samples=args.samples,
                 z_mode=args.z, seed=args.seed, device=args.device, video=not args.no_video)
    print(f"{args.split}: mean PSNR {s['mean_psnr']:.2f} dB (min frame {s['min_psnr']:.2f}), "
          f"SSIM {s['mean_ssim']:.4f} over {s['frames'] - 1} predicted frames x {len(s['sequences'])} sequence(s)")
    if s["samples"] > 1:
        print(f"best of {s['samples']}: PSNR {s['best_of_n_psnr']:.2f} dB, SSIM {s['best_of_n_ssim']:.4f}")
    print(f"written to {out}")


def cmd_predict(args: argparse.Namespace) -> None:
    from .evaluation.evaluate import predict_files

    r = predict_files(args.checkpoint, args.out, first_frame=args.first_frame, poses=args.poses,
                      test_data=args.test_data, z_mode=args.z, seed=args.seed, device=args.device)
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
    _add_config_overrides(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="per-frame PSNR/SSIM of validation or test rollouts")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--split", choices=["val", "test"], default="val")
    e.add_argument("--out", help="output folder (default RUN/eval_SPLIT)")
    e.add_argument("--length", type=int, help="frames per sequence (default the config's val_vi_len)")
    e.add_argument("--samples", type=int, default=1, help="rollouts per sequence with different z")
    e.add_argument("--z", choices=["prior", "zero"], help="z at inference (default: the config's z_infer)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cpu")
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
    r.set_defaults(func=cmd_predict)

    d = sub.add_parser("demo", help="synthesise data, train the small preset a few minutes, evaluate")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--minutes", type=float, default=4.0, help="training budget")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)

    for name in ("plot", "report", "study"):
        try:
            from . import cli_analysis
        except ImportError:
            break
        cli_analysis.register(sub, name)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [LAB_ALIASES.get(a, a) for a in argv]
    args = build_parser().parse_args(argv)
    from .data.lab import DataError
    from .training.checkpoint import CheckpointError
    from .training.trainer import NonFiniteLossError

    try:
        args.func(args)
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
        raise
    except KeyboardInterrupt:
        print(f"posecast {args.command}: interrupted; resume training with --resume RUN_DIR", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
