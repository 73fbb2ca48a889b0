"""Pose extraction: a video or an image folder -> keypoints.npz and one label image per frame.

Output folder::

    keypoints.npz          PoseSequence (keypoints of the kept frames, source indices, missing)
    frame0.png ...         one label per kept frame, numbered 0..K-1 without gaps (the lab layout);
                           keypoints.npz's frame_indices[k] is the source frame of frame{k}.png
"""
from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from .draw import draw_label
from .errors import PoseError, PoseInputError
from .estimate import MediaPipePose, PoseEstimator
from .keypoints import NUM_KEYPOINTS, PoseSequence, save_keypoints, smooth_keypoints
from .source import FrameSource, open_source

_LABEL_RE = re.compile(r"^frame\d+\.png$", re.IGNORECASE)


@dataclass(frozen=True)
class ExtractSummary:
    """What :func:`extract_poses` did."""

    out_dir: Path
    keypoints_path: Path
    frames: int  # frames read from the input
    kept: int  # frames with a person: label images written
    missing: list[int] = field(default_factory=list)  # source frame indices with no person
    image_size: tuple[int, int] = (0, 0)  # the input's (W, H)
    label_size: tuple[int, int] = (0, 0)  # the labels' (W, H)
    seconds: float = 0.0

    def describe(self) -> str:
        """A few lines for a person."""
        gaps = ", ".join(str(i) for i in self.missing[:20]) + (" ..." if len(self.missing) > 20 else "")
        return "\n".join([
            f"frames read: {self.frames} ({self.image_size[0]}x{self.image_size[1]})",
            f"labels written: {self.kept} ({self.label_size[0]}x{self.label_size[1]}) in {self.out_dir}",
            f"frames with no person (left out): {len(self.missing)}" + (f" [{gaps}]" if gaps else ""),
            f"keypoints: {self.keypoints_path}",
            f"time: {self.seconds:.1f} s ({self.seconds / max(self.frames, 1) * 1000:.0f} ms/frame)",
        ])


def _check_pose(pose: np.ndarray | None, name: str) -> np.ndarray | None:
    if pose is None:
        return None
    pose = np.asarray(pose, np.float32)
    if pose.shape != (NUM_KEYPOINTS, 3):
        raise PoseError(f"the pose estimator returned shape {pose.shape} for {name}; expected (18, 3)")
    return pose


def estimate_frames(source: FrameSource, estimate: Callable[[np.ndarray, str], np.ndarray | None],
                    progress: bool) -> tuple[list[np.ndarray | None], list[str]]:
    """One pose [18, 3] (or None) and one name per decoded frame of ``source``; ``estimate(image,
    name)`` finds the pose of one frame. PoseInputError when nothing decodes or no frame has a
    person."""
    poses: list[np.ndarray | None] = []
    names: list[str] = []
    with tqdm(total=source.count, desc="poses", unit="frame", disable=not progress) as bar:
        for frame in source.frames():
            poses.append(estimate(frame.image, frame.name))
            names.append(frame.name)
            bar.update(1)
    if not poses:
        raise PoseInputError(f"{source.path}: no frames could be decoded")
    if all(p is None for p in poses):
        raise PoseInputError(f"{source.path}: no person found in any of the {len(poses)} frames")
    return poses, names


def kept_sequence(poses: list[np.ndarray | None], names: list[str], size: tuple[int, int],
                  smooth: bool) -> PoseSequence:
    """The frames with a person as a PoseSequence of source ``size`` = (W, H); the others count
    as confidence 0 while smoothing (``smooth``: :func:`smooth_keypoints`)."""
    kept = [i for i, p in enumerate(poses) if p is not None]
    full = np.zeros((len(poses), NUM_KEYPOINTS, 3), np.float32)
    for i in kept:
        full[i] = poses[i]
    if smooth:
        full = smooth_keypoints(full)
    missing = [i for i, p in enumerate(poses) if p is None]
    return PoseSequence(full[kept], size, np.array(kept, np.int64), [names[i] for i in kept], missing)


@contextlib.contextmanager
def estimator_or_mediapipe(estimator: PoseEstimator | None) -> Iterator[PoseEstimator]:
    """The estimator given, or a MediaPipePose opened for the block and closed after it."""
    if estimator is not None:
        yield estimator
        return
    own = MediaPipePose()
    try:
        yield own
    finally:
        own.close()


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    old = [p for p in out_dir.iterdir() if _LABEL_RE.match(p.name)]
    if old and not overwrite:
        raise PoseInputError(f"{out_dir} already holds {len(old)} frame<N>.png labels; "
                             "choose an empty folder or overwrite")
    for p in old:  # stale labels of a longer earlier run would join this sequence
        p.unlink()


def _write_labels(seq: PoseSequence, out_dir: Path, size: tuple[int, int]) -> None:
    for k, pose in enumerate(seq.keypoints):
        Image.fromarray(draw_label(pose, seq.image_size, size)).save(out_dir / f"frame{k}.png")


def extract_poses(input: str | Path, out_dir: str | Path, size: tuple[int, int] = (64, 32),
                  estimator: PoseEstimator | None = None, smooth: bool = True,
                  progress: bool = True, overwrite: bool = False) -> ExtractSummary:
    """Estimate the pose in every frame of ``input`` (a video or an image folder) and write
    ``out_dir``/keypoints.npz and one label image ``frame{k}.png`` of ``size`` = (W, H) per
    frame that has a person. Frames with no person are listed and left out, not drawn empty.

    ``estimator`` defaults to :class:`MediaPipePose` (the optional ``pose`` extra); ``smooth``
    applies :func:`smooth_keypoints` over the whole sequence. An ``out_dir`` that already holds
    frame<N>.png labels is refused unless ``overwrite``, which deletes them first.
    """
    start = time.perf_counter()
    source = open_source(input)
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, overwrite)
    with estimator_or_mediapipe(estimator) as est:
        poses, names = estimate_frames(source, lambda image, name: _check_pose(est(image), name), progress)
    seq = kept_sequence(poses, names, source.size, smooth)
    path = save_keypoints(out_dir / "keypoints.npz", seq)
    _write_labels(seq, out_dir, size)
    return ExtractSummary(out_dir, path, len(poses), len(seq.keypoints), seq.missing,
                          source.size, tuple(size), time.perf_counter() - start)
