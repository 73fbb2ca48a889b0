"""Pose extraction: a video or an image folder -> keypoints.npz and one label image per frame.

Output folder::

    keypoints.npz          PoseSequence (keypoints of the kept frames, source indices, missing)
    frame0.png ...         one label per kept frame, numbered 0..K-1 without gaps (the lab layout);
                           keypoints.npz's frame_indices[k] is the source frame of frame{k}.png
    preview/overlay.mp4    every kept frame's crop with its skeleton drawn thick (to check by eye)
    preview/contact_sheet.png   12 of those frames in a grid

The labels are drawn in one crop of the label size's aspect around the person (the crop that
`posecast prepare` takes with the same margin), not the whole frame stretched to that aspect:
a 16:9 video's labels at 64x32 would otherwise be squashed by 11 %. The folder is written
whole or not at all (:func:`posecast.poses.staging.staged_output`).
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
from .framing import CropBox, crop_box, keypoints_into
from .keypoints import NUM_KEYPOINTS, PoseSequence, save_keypoints, smooth_keypoints, smoothing_window
from .options import check_options
from .preview import OverlayWriter, preview_size
from .source import FrameSource, open_source, video_fps
from .staging import staged_output

PREVIEW_DIR = "preview"

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
    crop: CropBox | None = None  # the crop the labels were drawn in (source pixels)
    redetected: int = 0  # frames found by per-frame detection after tracking lost the person

    def describe(self) -> str:
        """A few lines for a person."""
        gaps = ", ".join(str(i) for i in self.missing[:20]) + (" ..." if len(self.missing) > 20 else "")
        return "\n".join([
            f"frames read: {self.frames} ({self.image_size[0]}x{self.image_size[1]})",
            f"labels written: {self.kept} ({self.label_size[0]}x{self.label_size[1]}) in {self.out_dir}",
            f"frames with no person (left out): {len(self.missing)}" + (f" [{gaps}]" if gaps else ""),
            f"keypoints: {self.keypoints_path}",
            *([f"crop: left {self.crop.left:.1f}, top {self.crop.top:.1f}, {self.crop.width:.1f} x "
               f"{self.crop.height:.1f} px"] if self.crop else []),
            *([f"tracking lost the person in {self.redetected} frame(s): found by per-frame detection"]
              if self.redetected else []),
            f"preview: {self.out_dir / PREVIEW_DIR} (overlay.mp4, contact_sheet.png)",
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
                  smooth: bool | int) -> PoseSequence:
    """The frames with a person as a PoseSequence of source ``size`` = (W, H); the others count
    as confidence 0 while smoothing (``smooth``: :func:`smooth_keypoints` with that window in
    frames, True the default one, False or 0 none)."""
    kept = [i for i, p in enumerate(poses) if p is not None]
    full = np.zeros((len(poses), NUM_KEYPOINTS, 3), np.float32)
    for i in kept:
        full[i] = poses[i]
    window = smoothing_window(smooth)
    if window:
        full = smooth_keypoints(full, window)
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


def check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse an ``out_dir`` that is a file, or holds frame<N>.png labels without ``overwrite``
    (nothing is deleted here: the new output replaces the old only once it is complete)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PoseInputError(f"{out_dir}: --out is a file, not a folder")
    old = _old_labels(out_dir)
    if old and not overwrite:
        raise PoseInputError(f"{out_dir} already holds {len(old)} frame<N>.png labels; "
                             "choose an empty folder or overwrite")


def _old_labels(out_dir: Path) -> list[Path]:
    """frame<N>.png labels of an earlier run (a longer one's would join this sequence)."""
    return [p for p in out_dir.iterdir() if _LABEL_RE.match(p.name)] if out_dir.is_dir() else []


def write_outputs(source: FrameSource, seq: PoseSequence, box: CropBox, size: tuple[int, int],
                  out_dir: Path, fps: float = 30.0, progress: bool = False) -> None:
    """Decode ``source`` again: one label ``frame{k}.png`` of ``size`` per kept frame (drawn in
    the ``box`` crop) and the previews (``preview/``), written into ``out_dir``."""
    row_of = {int(i): r for r, i in enumerate(seq.frame_indices)}
    with OverlayWriter(out_dir / PREVIEW_DIR, preview_size(size[0] / size[1]), fps, len(row_of)) as overlay:
        for frame in tqdm(source.frames(), total=source.count, desc="labels", unit="frame", disable=not progress):
            row = row_of.get(frame.index)
            if row is None:
                continue
            pose = seq.keypoints[row]
            label = draw_label(keypoints_into(pose, box, size), size, size)
            Image.fromarray(label).save(out_dir / f"frame{row}.png")
            overlay.add(f"frame {row} ({frame.name})", frame.image, pose, box)


def extract_poses(input: str | Path, out_dir: str | Path, size: tuple[int, int] = (64, 32),
                  estimator: PoseEstimator | None = None, smooth: bool | int = True,
                  progress: bool = True, overwrite: bool = False, margin: float = 0.15) -> ExtractSummary:
    """Estimate the pose in every frame of ``input`` (a video or an image folder) and write
    ``out_dir``/keypoints.npz, one label image ``frame{k}.png`` of ``size`` = (W, H) per frame
    that has a person, and the previews (see the module docstring). Frames with no person are
    listed and left out, not drawn empty.

    ``estimator`` defaults to :class:`MediaPipePose` (the optional ``pose`` extra); ``smooth``
    applies :func:`smooth_keypoints` over the whole sequence (a window in frames; True: the
    default); ``margin`` is the crop's margin around the person (a fraction of their height).
    An ``out_dir`` that already holds frame<N>.png labels is refused unless ``overwrite``, which
    replaces them. Every option is checked before a frame is decoded; nothing is left in
    ``out_dir`` when anything fails.
    """
    start = time.perf_counter()
    window = smoothing_window(smooth)
    check_options(size=tuple(size), smooth=window, margin=margin)
    source = open_source(input)
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite)
    with estimator_or_mediapipe(estimator) as est:
        poses, names = estimate_frames(source, lambda image, name: _check_pose(est(image), name), progress)
        redetected = int(getattr(est, "redetected", 0))
    seq = kept_sequence(poses, names, source.size, window)
    box = crop_box(seq.keypoints, source.size, size[0] / size[1], margin=margin)
    with staged_output(out_dir, stale=lambda: _old_labels(out_dir)) as stage:
        save_keypoints(stage / "keypoints.npz", seq)
        write_outputs(source, seq, box, tuple(size), stage, video_fps(source) or 30.0, progress)
    return ExtractSummary(out_dir, out_dir / "keypoints.npz", len(poses), len(seq.keypoints), seq.missing,
                          source.size, tuple(size), time.perf_counter() - start, box, redetected)

