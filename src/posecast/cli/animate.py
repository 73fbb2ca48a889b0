"""`posecast animate --checkpoint CKPT --first-frame IMAGE --driving VIDEO_OR_POSE_DIR --out OUT.mp4`."""
from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING

from .common import number_arg

if TYPE_CHECKING:
    from ..poses.estimate import PoseEstimator


_non_negative = number_arg(int, low=0, what="0 or more")
_two_or_more = number_arg(int, low=2, what="2 or more (a rollout needs at least 2 frames)")


def _frame_rate(text: str) -> float:
    """A positive, finite frame rate."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive frame rate, got {text}")
    return value


DESCRIPTION = """\
Retarget the driving skeleton (a video, or a pose folder with the keypoints.npz of `posecast poses`)
onto the first frame's person, draw the labels at the model's frame size and roll the model out. A
pose folder of label images without keypoints.npz (the dataset's labels) drives as it is, without
retargeting: only right for the same person and camera. Writes OUT.mp4, OUT.gif (driving |
retargeted | result), OUT_poses/, OUT_preview.png (the skeletons over the first frame) and with
--truth OUT_psnr.png. With --preview, only OUT_preview.png is written, to check the alignment before
generating.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``animate`` command on an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "animate", help="make the person of a photo perform the poses of a driving video",
        description=DESCRIPTION)
    p.add_argument("--checkpoint", required=True, help="a posecast (or lab) checkpoint")
    p.add_argument("--first-frame", required=True, help="the photo of the person (PNG, JPEG)")
    p.add_argument("--driving", required=True, help="a video, or a pose folder (keypoints.npz or label images)")
    p.add_argument("--driving-keypoints", help="a keypoints.npz to drive with (instead of estimating)")
    p.add_argument("--out", required=True, help="the video to write (.mp4; the .gif goes beside it)")
    p.add_argument("--truth", help="ground-truth frames (a folder of frame<N>.png or an .npz): PSNR plot")
    p.add_argument("--start", type=_non_negative, default=0, help="first driving frame (default 0)")
    p.add_argument("--max-frames", type=_two_or_more, help="at most this many driving frames")
    p.add_argument("--fps", type=_frame_rate, help="output frame rate (default: the driving video's, else 30)")
    p.add_argument("--preview", action="store_true",
                   help="write only OUT_preview.png: the retargeted skeletons of the first driving "
                        "frames drawn thick over the first frame, to check the alignment; then stop")
    p.add_argument("--z", choices=["prior", "zero"], help="z at inference (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="default: the config's")
    p.set_defaults(func=run)
    return p


def _input_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean a bad input (printed as one line, exit code 2)."""
    from ..data.lab import DataError
    from ..poses.errors import PoseError
    from ..io.checkpoint import CheckpointError

    return (PoseError, DataError, CheckpointError, ValueError, OSError)


def _preview(args: argparse.Namespace, estimator: PoseEstimator | None) -> int:
    """``--preview``: write OUT_preview.png, print its path, and stop before generating."""
    from ..inference.animate import preview

    try:
        path, inputs = preview(args.checkpoint, args.first_frame, args.driving, args.out,
                               driving_keypoints=args.driving_keypoints, estimator=estimator,
                               start=args.start, max_frames=args.max_frames, device=args.device)
    except _input_errors() as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    how = "retargeted" if inputs.mode == "keypoints" else "label images as they are (no retargeting)"
    print(f"preview: {path}\n(the first driving frames, {how}, drawn over the first frame: check that "
          "the skeletons lie on the person, then run again without --preview)")
    return 0


def run(args: argparse.Namespace, estimator: PoseEstimator | None = None) -> int:
    """Run the command: print the summary (with --preview the preview's path) and return 0, or
    print one ``error: ...`` line and return 2. ``estimator`` (tests) replaces MediaPipe."""
    from ..inference.animate import animate

    if args.preview:
        return _preview(args, estimator)
    try:
        result = animate(args.checkpoint, args.first_frame, args.driving, args.out,
                         driving_keypoints=args.driving_keypoints, truth=args.truth, estimator=estimator,
                         start=args.start, max_frames=args.max_frames, fps=args.fps, z_mode=args.z,
                         seed=args.seed, device=args.device, precision=args.precision, progress=True)
    except _input_errors() as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(result.describe())
    return 0
