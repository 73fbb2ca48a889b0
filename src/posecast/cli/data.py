"""`posecast synth` and `posecast demo`: make data (and the demo's run)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_synth(subparsers: Any) -> None:
    s = subparsers.add_parser("synth", help="write a synthetic dancer dataset in the lab layout")
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


def add_demo(subparsers: Any) -> None:
    d = subparsers.add_parser("demo", help="synthesise data, train the demo recipe a few minutes, evaluate")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--minutes", type=float, default=4.0, help="training budget")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)


def cmd_synth(args: argparse.Namespace) -> None:
    from ..data.synth import write_synthetic_dataset

    out = write_synthetic_dataset(args.out_dir, seed=args.seed, height=args.height, width=args.width,
                                  train_sequences=args.train_sequences, train_len=args.train_len,
                                  val_len=args.val_len, test_sequences=args.test_sequences,
                                  test_len=args.test_len, progress=True)
    print(f"synthetic dataset written to {out}")


def cmd_demo(args: argparse.Namespace) -> None:
    from ..demo import run_demo

    run_demo(Path(args.out), minutes=args.minutes, seed=args.seed)
