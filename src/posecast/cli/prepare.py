"""`posecast prepare VIDEO --out DATASET [--size WxH] [--val-seconds S] [--test-seconds S]`."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..poses.options import option_type
from .poses import add_label_options

if TYPE_CHECKING:
    from ..poses.estimate import PoseEstimator


DESCRIPTION = """\
Decode the clip, estimate the dancer's pose in every frame (MediaPipe: the optional 'pose' extra),
crop one box of the frame size's aspect around the person, resize, draw the labels, and write
train/, val/, test/, gt/ so that `posecast train --data DATASET` runs on it. Frames without a person
are left out; prepare_report.json says what was kept, the crop and the splits.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``prepare`` command on an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "prepare", help="make a dataset in the lab layout from a video of a dancer",
        description=DESCRIPTION)
    p.add_argument("video", help="a video (MP4, MOV, WebM) or a folder of frames")
    p.add_argument("--out", required=True, help="the dataset folder to write")
    add_label_options(p, "frame", "; the report folder's jitter.png shows the keypoints' speed before and after")
    p.add_argument("--val-seconds", type=option_type("val_seconds", float), default=3.0,
                   help="validation: this many seconds before the test part (default 3)")
    p.add_argument("--test-seconds", type=option_type("test_seconds", float), default=3.0,
                   help="test: the clip's last seconds (default 3; 0: no test split)")
    p.add_argument("--fps", type=option_type("fps", float), help="frame rate (default: the video's; 30 for a folder)")
    p.add_argument("--min-train-frames", type=option_type("min_train", int), default=16, help="refuse a clip "
                   "that leaves fewer training frames (default 16, the default training clip length)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace, estimator: PoseEstimator | None = None) -> int:
    """Run the command: print the summary and return 0, or print one ``error: ...`` line and
    return 2. ``estimator`` (tests) replaces MediaPipe."""
    from ..poses.errors import PoseError
    from ..data.lab import DataError
    from ..data.prepare import prepare_dataset

    try:
        summary = prepare_dataset(args.video, args.out, size=tuple(args.size), val_seconds=args.val_seconds,
                                  test_seconds=args.test_seconds, fps=args.fps, estimator=estimator,
                                  smooth=args.smooth, margin=args.margin, min_train=args.min_train_frames,
                                  overwrite=args.overwrite, progress=True)
    except (PoseError, DataError, ValueError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 0
