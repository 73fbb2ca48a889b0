"""`posecast poses INPUT --out DIR [--size WxH] [--no-smooth] [--overwrite]`."""
from __future__ import annotations

import argparse
import sys

from ..poses.errors import PoseError
from .common import size_arg


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``poses`` command on an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "poses", help="extract poses from a video or an image folder and draw label images",
        description="Estimate the dancer's pose in every frame (MediaPipe: the optional 'pose' "
                    "extra), smooth it over time, and write keypoints.npz and one label image "
                    "frame<N>.png per frame with a person (frames without one are listed).")
    p.add_argument("input", help="a video (MP4, MOV, WebM) or a folder of images")
    p.add_argument("--out", required=True, help="output folder for keypoints.npz and the labels")
    p.add_argument("--size", type=size_arg, default=(64, 32), help="label size WxH (default 64x32)")
    p.add_argument("--no-smooth", dest="smooth", action="store_false",
                   help="keep the per-frame keypoints (no temporal smoothing)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete frame<N>.png labels already in --out first")
    p.set_defaults(func=run)  # the convention of posecast.cli (its main must return run()'s code)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the command: print the summary and return 0, or print ``error: ...`` and return 2."""
    from ..poses.extract import extract_poses

    try:
        summary = extract_poses(args.input, args.out, size=tuple(args.size), smooth=args.smooth,
                                progress=True, overwrite=args.overwrite)
    except (PoseError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 0
