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
    first_frames.json              the poses of each split's first frame, in its pixels
    prepare_report.json            what was decoded, kept, left out, the crop, the splits
    jitter.png                     keypoint speed per frame before and after smoothing
    preview/overlay.mp4            every written frame with its skeleton drawn thick
    preview/contact_sheet.png      12 of them in a grid

Every option and the clip's length against the splits are checked before the pose pass; the
dataset is written into a hidden folder beside ``out_dir`` and moved into place only when it is
complete, so a failure leaves no folder behind and an existing dataset untouched.

The splits follow time: test is the clip's last ``test_seconds``, validation the
``val_seconds`` before it, training the rest. Validation and test are rollouts, so each must
be one unbroken run of frames: when frames without a person cut the end of the clip, they are
taken from the latest run that is long enough. The training split is one sequence in the lab
layout; where left-out frames make it jump, the jump is listed in the report (``train_cuts``).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..poses.draw import draw_label
from ..poses.estimate import PoseEstimator
from ..poses.extract import PREVIEW_DIR, estimate_frames, estimator_or_mediapipe, kept_sequence
from ..poses.framing import CropBox, crop_box, crop_resize, estimate_pose, keypoints_into
from ..poses.keypoints import KEYPOINT_NAMES, PoseSequence, jitter_summary, save_keypoints, smoothing_window
from ..poses.options import check_options
from ..poses.preview import JITTER_FILE, OverlayWriter, plot_jitter, preview_size
from ..poses.source import FrameSource, open_source, video_fps, video_seconds
from ..poses.staging import staged_output
from .lab import DataError

SPLIT_DIRS = ("train", "val", "test", "gt")
FIRST_FRAMES_FILE, REPORT_FILE = "first_frames.json", "prepare_report.json"
OWN_FILES = ("keypoints.npz", FIRST_FRAMES_FILE, REPORT_FILE, JITTER_FILE, PREVIEW_DIR)


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
        if r.get("frames_redetected"):
            lines.append(f"tracking lost the person in {r['frames_redetected']} frame(s): found by per-frame detection")
        if "smoothing" in r:
            m = r["smoothing"]
            lines.append(f"smoothing: {m['window']} frames; jitter {m['jitter_raw']} -> {m['jitter_smoothed']} "
                         f"label px/frame ({r['jitter_plot']})")
            lines.append(f"preview: {self.out_dir / PREVIEW_DIR} (overlay.mp4, contact_sheet.png)")
        lines.append(f"dataset: {self.out_dir} (report: prepare_report.json)")
        return "\n".join(lines)


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
                where: str = "the clip", clip: str = "") -> SplitPlan:
    """Split kept frames (their source ``indices``, increasing) by time: test the last ``n_test``
    frames, val the ``n_val`` before, each one unbroken run; training the rest (>= ``min_train``).
    ``clip`` (such as "3.0 s, 90 frames at 30.00 fps") is added to the messages."""
    indices = np.asarray(indices, np.int64)
    about = f" (the clip: {clip})" if clip else ""
    runs = _runs(indices)
    test, runs = _take_tail(runs, n_test) if n_test else ([], runs)
    if n_test and not test:
        raise PrepareError(f"{where}: no unbroken run of {n_test} frames with a person for the test "
                           f"split (longest: {max(b - a for a, b in runs)}){about}; lower --test-seconds")
    val, runs = _take_tail(runs, n_val)
    if not val:
        raise PrepareError(f"{where}: no unbroken run of {n_val} frames with a person left for the "
                           f"validation split{about}; lower --val-seconds (or --test-seconds)")
    train = [p for a, b in runs for p in range(a, b)]
    if len(train) < min_train:
        raise PrepareError(f"{where} is too short for the splits: {len(indices)} frames with a person{about}, "
                           f"{n_val} for val and {n_test} for test leave {len(train)} for training "
                           f"(at least {min_train}); lower --val-seconds / --test-seconds")
    src = indices[train]
    cuts = (np.flatnonzero(np.diff(src) != 1) + 1).tolist()
    return SplitPlan(train, val, test, cuts)


@dataclass(frozen=True)
class Clip:
    """The input's frame rate, its frames from the header (None when it does not say) and the
    split sizes in frames."""

    fps: float
    frames: int | None
    n_val: int
    n_test: int

    def describe(self) -> str:
        """'3.0 s, 90 frames at 30.00 fps' (or only the rate when the length is unknown)."""
        if self.frames is None:
            return f"{self.fps:.2f} fps"
        return f"{self.frames / self.fps:.1f} s, {self.frames} frames at {self.fps:.2f} fps"


def measure_clip(source: FrameSource, fps: float | None, val_seconds: float, test_seconds: float) -> Clip:
    """The clip's rate (``fps``, else the video's, else 30), length and split sizes; PrepareError
    when a split would have fewer than 2 frames."""
    rate = float(fps or video_fps(source) or 30.0)
    frames = source.count
    if frames is None and (seconds := video_seconds(source)) is not None:
        frames = int(round(seconds * rate))
    n_val, n_test = round(val_seconds * rate), round(test_seconds * rate)
    if n_val < 2 or n_test < 0 or (0 < n_test < 2):
        raise PrepareError(f"--val-seconds {val_seconds:g} / --test-seconds {test_seconds:g} at {rate:.2f} fps "
                           "give fewer than 2 frames (a rollout needs its first frame and one more)")
    return Clip(rate, frames, n_val, n_test)


def check_clip_length(clip: Clip, min_train: int, where: str) -> None:
    """Before the pose pass: refuse a clip whose frames cannot hold the splits even if every
    frame has a person (the header's count; skipped when the header does not say)."""
    if clip.frames is None or clip.frames - clip.n_val - clip.n_test >= min_train:
        return
    need = clip.n_val + clip.n_test + min_train
    raise PrepareError(
        f"{where} is too short for the splits: {clip.describe()}; {clip.n_val} for val and {clip.n_test} "
        f"for test leave {clip.frames - clip.n_val - clip.n_test} for training (at least {min_train}, "
        f"--min-train-frames), so the clip needs {need} frames ({need / clip.fps:.1f} s); "
        "lower --val-seconds / --test-seconds")


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse a file, or a folder that already holds a dataset unless ``overwrite`` (the old
    dataset is replaced only once the new one is complete)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PrepareError(f"{out_dir}: --out is a file, not a folder")
    old = [out_dir / d for d in SPLIT_DIRS if (out_dir / d).exists()]
    if old and not overwrite:
        raise PrepareError(f"{out_dir} already holds a dataset ({', '.join(p.name for p in old)}/); "
                           "choose another --out or pass --overwrite")


def _stale(out_dir: Path) -> list[Path]:
    """An earlier dataset's parts in ``out_dir`` (removed when the new one moves in)."""
    return [out_dir / name for name in (*SPLIT_DIRS, *OWN_FILES) if (out_dir / name).exists()]


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
                  size: tuple[int, int], out_dir: Path, fps: float, progress: bool) -> None:
    """Pass 2: crop, resize and write every kept frame and its label; gt/0.npz for the test;
    the overlay preview of every written frame."""
    row_of = {int(i): r for r, i in enumerate(seq.frame_indices)}
    targets = _targets(plan, out_dir)
    gt: list[np.ndarray] = []
    with OverlayWriter(out_dir / PREVIEW_DIR, preview_size(size[0] / size[1]), fps, len(targets)) as overlay:
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
            overlay.add(f"{split} {label_path.stem} (source {frame.index})", frame.image, seq.keypoints[row], box)
            if split == "test":
                gt.append(image)
    if gt:
        (out_dir / "gt").mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out_dir / "gt" / "0.npz", frames=np.stack(gt))


def _first_frames(seq: PoseSequence, plan: SplitPlan, box: CropBox, size: tuple[int, int],
                  out_dir: Path) -> dict[str, Any]:
    """The poses of each split's first frame, in its pixels, with the image's SHA-256 (so that
    a replaced image is not paired with a pose that is not its own)."""
    firsts = {"train": "train/train_img/frame0.png", "val": "val/val_img/frame0.png",
              "test": "test/test_img/0/frame0.png"}
    frames = {}
    for split, rel in firsts.items():
        rows = getattr(plan, split)
        if rows:
            kp = keypoints_into(seq.keypoints[rows[0]], box, size)
            frames[rel] = {"source_frame": int(seq.frame_indices[rows[0]]), "size": list(size),
                           "sha256": hashlib.sha256((out_dir / rel).read_bytes()).hexdigest(),
                           "keypoints": [[float(v) for v in joint] for joint in kp]}
    return {"keypoint_names": list(KEYPOINT_NAMES), "coordinates": "pixels of the image (x right, y down), "
            "confidence", "frames": frames}


def load_first_frame_keypoints(image: str | Path) -> np.ndarray | None:
    """The pose float32 [18, 3] that `posecast prepare` recorded for ``image`` (in its pixels)
    when it is a split's first frame of a prepared dataset (``first_frames.json`` in one of its
    parent folders) and unchanged since; None otherwise. PrepareError for an unreadable file."""
    path = Path(image).resolve()
    for root in list(path.parents)[:4]:  # test/test_img/0/frame0.png is 4 levels down
        record = root / FIRST_FRAMES_FILE
        if record.is_file():
            break
    else:
        return None
    try:
        entry = json.loads(record.read_text())["frames"].get(path.relative_to(root).as_posix())
        if entry is None or hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            return None
        kp = np.asarray(entry["keypoints"], np.float32)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise PrepareError(f"{record}: not a readable first-frame record ({err})") from err
    if kp.shape != (len(KEYPOINT_NAMES), 3):
        raise PrepareError(f"{record}: keypoints of shape {kp.shape} for {path.name}; expected (18, 3)")
    return kp


def _report(source: FrameSource, clip: Clip, seq: PoseSequence, box: CropBox, plan: SplitPlan,
            size: tuple[int, int], decoded: int, seconds: float) -> dict[str, Any]:
    def span(rows: list[int]) -> list[int]:
        return [int(seq.frame_indices[rows[0]]), int(seq.frame_indices[rows[-1]])] if rows else []

    return {
        "input": str(source.path), "source_size": list(source.size), "fps": clip.fps,
        "frames_decoded": decoded, "frames_kept": len(seq.keypoints),
        "frames_without_person": len(seq.missing), "missing_frames": seq.missing,
        "crop": box.to_dict(), "frame_size": list(size),
        "splits": {"train": len(plan.train), "val": len(plan.val), "test": len(plan.test)},
        "source_frames": {"train": span(plan.train), "val": span(plan.val), "test": span(plan.test)},
        "train_cuts": plan.train_cuts, "seconds": round(seconds, 2),
    }


def _extras(raw: PoseSequence, seq: PoseSequence, box: CropBox, size: tuple[int, int], window: int,
            redetected: int, out_dir: Path) -> dict[str, Any]:
    """The jitter plot and the report's fields beyond the original ones (added, never renamed)."""
    into = [keypoints_into(s.keypoints, box, size) for s in (raw, seq)]
    plot_jitter(*into, seq.frame_indices, out_dir / JITTER_FILE, window=window)
    return {"smoothing": {"window": window, "unit": "label pixels per frame",
                          **jitter_summary(*into, seq.frame_indices)},
            "frames_redetected": redetected, "jitter_plot": JITTER_FILE, "first_frames": FIRST_FRAMES_FILE,
            "preview": {"overlay": f"{PREVIEW_DIR}/overlay.mp4", "contact_sheet": f"{PREVIEW_DIR}/contact_sheet.png"}}


def _estimate(source: FrameSource, estimator: PoseEstimator | None, window: int,
              progress: bool) -> tuple[PoseSequence, PoseSequence, int, int]:
    """Pass 1: (raw poses, smoothed poses, frames decoded, frames found by re-detection)."""
    with estimator_or_mediapipe(estimator) as est:
        poses, names = estimate_frames(source, lambda image, _name: estimate_pose(image, est), progress)
        redetected = int(getattr(est, "redetected", 0))
    raw = kept_sequence(poses, names, source.size, 0)
    return raw, kept_sequence(poses, names, source.size, window), len(poses), redetected


def prepare_dataset(video: str | Path, out_dir: str | Path, *, size: tuple[int, int] = (64, 32),
                    val_seconds: float = 3.0, test_seconds: float = 3.0, fps: float | None = None,
                    estimator: PoseEstimator | None = None, smooth: bool | int = True, margin: float = 0.15,
                    min_train: int = 16, overwrite: bool = False, progress: bool = True) -> PrepareSummary:
    """Turn one clip of a dancer (a video, or a folder of frames) into a dataset in the lab
    layout at ``out_dir`` with frames of ``size`` = (W, H); see the module docstring.

    ``fps`` overrides the clip's frame rate (image folders: 30 unless given); ``estimator``
    defaults to MediaPipe (the ``pose`` extra); ``smooth`` is the smoothing window in frames
    (True: the default 7, False or 0: none). Raises OptionError (a bad option), PoseInputError
    (not a video, no person) or PrepareError (too short for the splits, an existing dataset
    without ``overwrite``); all but the last two kinds of input error come before the pose pass.
    """
    start = time.perf_counter()
    window = smoothing_window(smooth)
    check_options(size=tuple(size), margin=margin, fps=fps, val_seconds=val_seconds,
                  test_seconds=test_seconds, min_train=min_train, smooth=window)
    source = open_source(video)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    clip = measure_clip(source, fps, val_seconds, test_seconds)
    check_clip_length(clip, min_train, str(source.path))
    raw, seq, decoded, redetected = _estimate(source, estimator, window, progress)
    plan = plan_splits(seq.frame_indices, clip.n_val, clip.n_test, min_train, where=str(source.path),
                       clip=clip.describe())
    box = crop_box(seq.keypoints, source.size, size[0] / size[1], margin=margin)
    with staged_output(out_dir, stale=lambda: _stale(out_dir)) as stage:
        _write_frames(source, seq, plan, box, size, stage, clip.fps, progress)
        save_keypoints(stage / "keypoints.npz", seq)
        (stage / FIRST_FRAMES_FILE).write_text(json.dumps(_first_frames(seq, plan, box, size, stage), indent=1))
        report = _report(source, clip, seq, box, plan, size, decoded, time.perf_counter() - start)
        report.update(_extras(raw, seq, box, size, window, redetected, stage))
        (stage / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return PrepareSummary(out_dir, report)
