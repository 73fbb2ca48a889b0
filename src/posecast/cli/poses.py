"""`posecast poses INPUT --out DIR [--size WxH] [--margin M] [--smooth FRAMES | --no-smooth] [--overwrite]`."""
from __future__ import annotations

import argparse
import sys

from ..poses.errors import PoseError
from ..poses.keypoints import SMOOTH_WINDOW
from ..poses.options import option_type
from .common import size_arg


DESCRIPTION = """\
Estimate the dancer's pose in every frame (MediaPipe: the optional 'pose' extra), smooth it over
time, and write keypoints.npz, one label image frame<N>.png per frame with a person (frames without
one are listed), drawn in one crop of the label size's aspect around the person, and preview/: every
frame with its skeleton drawn thick (overlay.mp4) and a contact sheet.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``poses`` command on an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "poses", help="extract poses from a video or an image folder and draw label images",
        description=DESCRIPTION)
    p.add_argument("input", help="a video (MP4, MOV, WebM) or a folder of images")
    p.add_argument("--out", required=True, help="output folder for keypoints.npz and the labels")
    add_label_options(p, "label")
    p.add_argument("--overwrite", action="store_true",
                   help="delete frame<N>.png labels already in --out first")
    p.set_defaults(func=run)  # the convention of posecast.cli (its main must return run()'s code)
    return p


def add_label_options(p: argparse.ArgumentParser, size_of: str, smooth_note: str = "") -> None:
    """--size, --margin, --smooth and --no-smooth: how the poses of a video become label images, the
    same in ``posecast poses`` and ``posecast prepare`` (``size_of``: what --size sets)."""
    p.add_argument("--size", type=option_type("size", size_arg), default=(64, 32),
                   help=f"{size_of} size WxH, sides multiples of 8 (default 64x32)")
    p.add_argument("--margin", type=option_type("margin", float), default=0.15, help="crop margin around "
                   "the person, as a fraction of the person's height, 0 to 2 (default 0.15)")
    p.add_argument("--smooth", type=option_type("smooth", int), default=SMOOTH_WINDOW, metavar="FRAMES",
                   help=f"temporal smoothing of the poses: the Savitzky-Golay window in frames, odd (default "
                        f"{SMOOTH_WINDOW}: 0.23 s at 30 fps; larger is stronger; 0: off){smooth_note}")
    p.add_argument("--no-smooth", dest="smooth", action="store_const", const=0,
                   help="keep the per-frame keypoints (the same as --smooth 0)")


def run(args: argparse.Namespace) -> int:
    """Run the command: print the summary and return 0, or print ``error: ...`` and return 2."""
    from ..poses.extract import extract_poses

    try:
        summary = extract_poses(args.input, args.out, size=tuple(args.size), smooth=args.smooth,
                                progress=True, overwrite=args.overwrite, margin=args.margin)
    except (PoseError, ValueError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 0
