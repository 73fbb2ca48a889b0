"""A dataset in the lab layout from one video of a dancer (`posecast prepare`).

Two passes over the clip, so that a long full-HD video never sits in memory:

1. decode every frame and estimate its pose (an injectable :class:`PoseEstimator`; MediaPipe by
   default); frames without a person are left out; the poses are smoothed over time;
2. one crop box of the frame size's aspect around the person (over the whole clip), then decode
   again: crop, resize (Pillow, Lanczos), draw the label from the keypoints mapped into the crop,
   and write the lab layout::

    train/train_img/frame{N}.png   train/train_label/frame{N}.png
    val/val_img/frame{N}.png       val/val_label/frame{N}.png
    test/test_img/0/frame0.png     test/test_label/0/frame{N}.png   gt/0.npz (frames [T, H, W, 3])
    keypoints.npz                  the smoothed poses of the kept frames (source pixels)
    prepare_report.json            what was decoded, kept, left out, the crop, the splits

The splits follow time: test is the clip's last ``test_seconds``, validation the
``val_seconds`` before it, training the rest. Validation and test are rollouts, so each must
be one unbroken run of frames: when frames without a person cut the end of the clip, they are
taken from the latest run that is long enough. The training split is one sequence in the lab
layout; where left-out frames make it jump, the jump is listed in the report (``train_cuts``).
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from ..poses.draw import draw_label
from ..poses.estimate import PoseEstimator
from ..poses.extract import estimate_frames, estimator_or_mediapipe, kept_sequence
from ..poses.framing import CropBox, crop_box, crop_resize, estimate_pose, keypoints_into
from ..poses.keypoints import PoseSequence, save_keypoints
from ..poses.source import FrameSource, open_source
from .lab import DataError

SPLIT_DIRS = ("train", "val", "test", "gt")


class PrepareError(DataError):
    """The clip cannot make a dataset (too short for the splits, an output in the way)."""


@dataclass(frozen=True)
class SplitPlan:
    """Positions (rows of the kept poses) of each split, in time order."""

    train: list[int]
    val: list[int]
    test: list[int]
    train_cuts: list[int] = field(default_factory=list)  # train frame N follows a jump


@dataclass(frozen=True)
class PrepareSummary:
    """What :func:`prepare_dataset` did (also written as prepare_report.json)."""

    out_dir: Path
    report: dict[str, Any]

    def describe(self) -> str:
        """A few lines for a person."""
        r = self.report
        c, s = r["crop"], r["splits"]
        lines = [
            f"frames decoded: {r['frames_decoded']} ({r['source_size'][0]}x{r['source_size'][1]}, {r['fps']:.2f} fps)",
            f"frames kept: {r['frames_kept']}, without a person (left out): {r['frames_without_person']}",
            f"crop: left {c['left']}, top {c['top']}, {c['width']} x {c['height']} px"
            + (" (clipped: the person's box did not fit at this aspect)" if c["clipped"] else ""),
            f"splits: train {s['train']}, val {s['val']}, test {s['test']} frames "
            f"({r['frame_size'][0]}x{r['frame_size'][1]})",
        ]
        if r["train_cuts"]:
            lines.append(f"train jumps over left-out frames before frame(s) {r['train_cuts'][:20]}")
        lines.append(f"dataset: {self.out_dir} (report: prepare_report.json)")
        return "\n".join(lines)


def video_fps(source: FrameSource) -> float | None:
    """The frame rate of a video source (None for image folders or when the file does not say)."""
    if source.kind != "video":
        return None
    with av.open(str(source.path)) as container:
        rate = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
    return float(rate) if rate else None


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Unbroken runs of consecutive source indices as (first, end) positions, end exclusive."""
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    edges = [0, *breaks.tolist(), len(indices)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _take_tail(runs: list[tuple[int, int]], n: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The last ``n`` positions of the latest run that holds ``n``, and the runs left over."""
    for k in range(len(runs) - 1, -1, -1):
        a, b = runs[k]
        if b - a >= n:
            rest = runs[:k] + ([(a, b - n)] if b - n > a else []) + runs[k + 1:]
            return list(range(b - n, b)), rest
    return [], runs


def plan_splits(indices: np.ndarray, n_val: int, n_test: int, min_train: int = 16,
                where: str = "the clip") -> SplitPlan:
    """Split kept frames (their source ``indices``, increasing) by time: test the last ``n_test``
    frames, val the ``n_val`` before, each one unbroken run; training the rest (>= ``min_train``)."""
    indices = np.asarray(indices, np.int64)
    runs = _runs(indices)
    test, runs = _take_tail(runs, n_test) if n_test else ([], runs)
    if n_test and not test:
        raise PrepareError(f"{where}: no unbroken run of {n_test} frames with a person for the test "
                           f"split (longest: {max(b - a for a, b in runs)}); lower --test-seconds")
    val, runs = _take_tail(runs, n_val)
    if not val:
        raise PrepareError(f"{where}: no unbroken run of {n_val} frames with a person left for the "
                           f"validation split; lower --val-seconds (or --test-seconds)")
    train = [p for a, b in runs for p in range(a, b)]
    if len(train) < min_train:
        raise PrepareError(f"{where} is too short for the splits: {len(indices)} frames with a person, "
                           f"{n_val} for val and {n_test} for test leave {len(train)} for training "
                           f"(at least {min_train}); lower --val-seconds / --test-seconds")
    src = indices[train]
    cuts = (np.flatnonzero(np.diff(src) != 1) + 1).tolist()
    return SplitPlan(train, val, test, cuts)


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse a folder that already holds a dataset unless ``overwrite`` (which removes it)."""
    old = [out_dir / d for d in SPLIT_DIRS if (out_dir / d).exists()]
    if old and not overwrite:
        raise PrepareError(f"{out_dir} already holds a dataset ({', '.join(p.name for p in old)}/); "
                           "choose another --out or pass --overwrite")
    for p in old:
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _targets(plan: SplitPlan, out_dir: Path) -> dict[int, tuple[str, Path | None, Path]]:
    """Position -> (split, image path or None, label path) in the lab layout."""
    out: dict[int, tuple[str, Path | None, Path]] = {}
    for split in ("train", "val"):
        for n, pos in enumerate(getattr(plan, split)):
            out[pos] = (split, out_dir / split / f"{split}_img" / f"frame{n}.png",
                        out_dir / split / f"{split}_label" / f"frame{n}.png")
    for n, pos in enumerate(plan.test):
        img = out_dir / "test" / "test_img" / "0" / "frame0.png" if n == 0 else None
        out[pos] = ("test", img, out_dir / "test" / "test_label" / "0" / f"frame{n}.png")
    return out


def _save_png(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, compress_level=1)  # small files: speed over bytes


def _write_frames(source: FrameSource, seq: PoseSequence, plan: SplitPlan, box: CropBox,
                  size: tuple[int, int], out_dir: Path, progress: bool) -> None:
    """Pass 2: crop, resize and write every kept frame and its label; gt/0.npz for the test."""
    row_of = {int(i): r for r, i in enumerate(seq.frame_indices)}
    targets = _targets(plan, out_dir)
    gt: list[np.ndarray] = []
    for frame in tqdm(source.frames(), total=source.count, desc="frames", unit="frame", disable=not progress):
        row = row_of.get(frame.index)
        if row is None or row not in targets:
            continue
        split, img_path, label_path = targets[row]
        image = crop_resize(frame.image, box, size)
        label = draw_label(keypoints_into(seq.keypoints[row], box, size), size, size)
        if img_path is not None:
            _save_png(image, img_path)
        _save_png(label, label_path)
        if split == "test":
            gt.append(image)
    if gt:
        (out_dir / "gt").mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out_dir / "gt" / "0.npz", frames=np.stack(gt))


def _report(source: FrameSource, fps: float, seq: PoseSequence, box: CropBox, plan: SplitPlan,
            size: tuple[int, int], decoded: int, seconds: float) -> dict[str, Any]:
    def span(rows: list[int]) -> list[int]:
        return [int(seq.frame_indices[rows[0]]), int(seq.frame_indices[rows[-1]])] if rows else []

    return {
        "input": str(source.path), "source_size": list(source.size), "fps": fps,
        "frames_decoded": decoded, "frames_kept": len(seq.keypoints),
        "frames_without_person": len(seq.missing), "missing_frames": seq.missing,
        "crop": box.to_dict(), "frame_size": list(size),
        "splits": {"train": len(plan.train), "val": len(plan.val), "test": len(plan.test)},
        "source_frames": {"train": span(plan.train), "val": span(plan.val), "test": span(plan.test)},
        "train_cuts": plan.train_cuts, "seconds": round(seconds, 2),
    }


def prepare_dataset(video: str | Path, out_dir: str | Path, *, size: tuple[int, int] = (64, 32),
                    val_seconds: float = 3.0, test_seconds: float = 3.0, fps: float | None = None,
                    estimator: PoseEstimator | None = None, smooth: bool = True, margin: float = 0.15,
                    min_train: int = 16, overwrite: bool = False, progress: bool = True) -> PrepareSummary:
    """Turn one clip of a dancer (a video, or a folder of frames) into a dataset in the lab
    layout at ``out_dir`` with frames of ``size`` = (W, H); see the module docstring.

    ``fps`` overrides the clip's frame rate (image folders: 30 unless given); ``estimator``
    defaults to MediaPipe (the ``pose`` extra). Raises PoseInputError (not a video, no person)
    or PrepareError (too short for the splits, an existing dataset without ``overwrite``).
    """
    start = time.perf_counter()
    source = open_source(video)
    out_dir = Path(out_dir)
    rate = float(fps or video_fps(source) or 30.0)
    n_val, n_test = round(val_seconds * rate), round(test_seconds * rate)
    if n_val < 2 or n_test < 0 or (0 < n_test < 2):
        raise PrepareError(f"--val-seconds {val_seconds} / --test-seconds {test_seconds} at {rate:.2f} fps "
                           "give fewer than 2 frames (a rollout needs its first frame and one more)")
    _check_out_dir(out_dir, overwrite)
    with estimator_or_mediapipe(estimator) as est:
        poses, names = estimate_frames(source, lambda image, _name: estimate_pose(image, est), progress)
    seq = kept_sequence(poses, names, source.size, smooth)
    plan = plan_splits(seq.frame_indices, n_val, n_test, min_train, where=str(source.path))
    box = crop_box(seq.keypoints, source.size, size[0] / size[1], margin=margin)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_frames(source, seq, plan, box, size, out_dir, progress)
    save_keypoints(out_dir / "keypoints.npz", seq)
    report = _report(source, rate, seq, box, plan, size, len(poses), time.perf_counter() - start)
    (out_dir / "prepare_report.json").write_text(json.dumps(report, indent=2))
    return PrepareSummary(out_dir, report)
