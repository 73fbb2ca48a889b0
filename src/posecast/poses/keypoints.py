"""COCO-18 keypoints: the joint order, one file per video, and temporal smoothing.

A pose is a float32 array [18, 3]: (x, y) in pixels of the source image and a confidence in
[0, 1]; a sequence is [T, 18, 3]. The joint order is OpenPose's COCO-18 order (``KEYPOINT_NAMES``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import savgol_filter

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
KP = {name: i for i, name in enumerate(KEYPOINT_NAMES)}  # name -> index
SMOOTH_WINDOW = 7  # frames of the default Savitzky-Golay window (0.23 s at 30 fps)


def smoothing_window(smooth: bool | int) -> int:
    """The window (frames, 0: off) that a ``smooth`` argument means: True is the default
    window, False is 0, a number is that window."""
    if smooth is True:
        return SMOOTH_WINDOW
    return 0 if smooth is False else int(smooth)


@dataclass
class PoseSequence:
    """The poses of one video: ``keypoints`` [T, 18, 3] for the T frames that have a person.

    ``frame_indices[t]`` / ``frame_names[t]`` say which source frame row t came from;
    ``missing`` lists the source frame indices where no person was found (not in ``keypoints``).
    ``image_size`` is the source (width, height) the pixel coordinates refer to.
    """

    keypoints: np.ndarray  # [T, 18, 3] float32
    image_size: tuple[int, int]  # (W, H)
    frame_indices: np.ndarray  # [T] int64
    frame_names: list[str]
    missing: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, np.float32)
        self.frame_indices = np.asarray(self.frame_indices, np.int64)
        if self.keypoints.ndim != 3 or self.keypoints.shape[1:] != (NUM_KEYPOINTS, 3):
            raise ValueError(f"keypoints must be [T, 18, 3], got {self.keypoints.shape}")
        if not len(self.keypoints) == len(self.frame_indices) == len(self.frame_names):
            raise ValueError("keypoints, frame_indices and frame_names differ in length")


def save_keypoints(path: str | Path, seq: PoseSequence) -> Path:
    """Write ``seq`` to one ``.npz`` file (no pickles); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, keypoints=seq.keypoints, image_size=np.asarray(seq.image_size, np.int64),
        frame_indices=seq.frame_indices, frame_names=np.asarray(seq.frame_names, dtype=str),
        missing=np.asarray(seq.missing, np.int64), keypoint_names=np.asarray(KEYPOINT_NAMES))
    return path


def load_keypoints(path: str | Path) -> PoseSequence:
    """Read a file written by :func:`save_keypoints`."""
    with np.load(Path(path), allow_pickle=False) as data:
        return PoseSequence(
            keypoints=data["keypoints"], image_size=tuple(int(v) for v in data["image_size"]),
            frame_indices=data["frame_indices"], frame_names=[str(s) for s in data["frame_names"]],
            missing=[int(v) for v in data["missing"]])


def _window(length: int, window: int, polyorder: int) -> int | None:
    """The odd Savitzky-Golay window that fits ``length`` samples, or None when none fits."""
    window = min(window, length if length % 2 else length - 1)
    return window if window > polyorder else None


def _smooth_track(xy: np.ndarray, good: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """Smooth one joint's track xy [T, 2] using only the frames where ``good`` [T] is True."""
    t = np.arange(len(xy))
    filled = np.stack([np.interp(t, t[good], xy[good, k]) for k in range(2)], axis=1)
    smoothed = savgol_filter(filled, window, polyorder, axis=0)
    out = xy.copy()
    out[good] = smoothed[good]
    return out


def smooth_keypoints(keypoints: np.ndarray, window: int = SMOOTH_WINDOW, polyorder: int = 2,
                     min_conf: float = 0.3) -> np.ndarray:
    """Temporally smooth [T, 18, 3] keypoints with a Savitzky-Golay filter (scipy.signal).

    The filter fits a degree-``polyorder`` polynomial in a sliding window of ``window`` frames
    (7 frames = 0.23 s at 30 fps), so it removes frame-to-frame jitter but keeps constant,
    linear and quadratic motion exactly. It is confidence-aware: per joint, the frames whose
    confidence is below ``min_conf`` are ignored (replaced, for filtering only, by linear
    interpolation between the good frames), so a wrong low-confidence position never pulls a
    good one; those frames keep their original values. Confidences are returned unchanged, and
    a joint with fewer than 2 good frames is left as it is. A ``window`` of ``polyorder`` frames
    or fewer (0: off) smooths nothing. Works in float64, returns float32.
    """
    kp = np.asarray(keypoints, np.float64)
    size = _window(len(kp), window, polyorder) if window > polyorder else None
    if size is None:
        return kp.astype(np.float32)
    out = kp.copy()
    for j in range(kp.shape[1]):
        good = kp[:, j, 2] >= min_conf
        if good.sum() >= 2:
            out[:, j, :2] = _smooth_track(kp[:, j, :2], good, size, polyorder)
    return out.astype(np.float32)


def keypoint_speed(keypoints: np.ndarray, frame_indices: np.ndarray | None = None,
                   min_conf: float = 0.3) -> np.ndarray:
    """Per-step speed of poses [T, 18, 3]: [T - 1], the mean over the joints confident in both
    frames of how far they moved (pixels per frame); NaN where no joint is confident in both or
    where ``frame_indices`` jumps (left-out frames: no speed across the gap)."""
    kp = np.asarray(keypoints, np.float64)
    if len(kp) < 2:
        return np.zeros(0)
    both = (kp[1:, :, 2] >= min_conf) & (kp[:-1, :, 2] >= min_conf)  # [T-1, 18]
    step = np.linalg.norm(kp[1:, :, :2] - kp[:-1, :, :2], axis=-1)
    total, count = np.where(both, step, 0.0).sum(1), both.sum(1)
    speed = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    if frame_indices is not None:
        speed[np.diff(np.asarray(frame_indices)) != 1] = np.nan
    return speed


def jitter_summary(raw: np.ndarray, smoothed: np.ndarray, frame_indices: np.ndarray | None = None,
                   min_conf: float = 0.3) -> dict[str, float]:
    """Mean keypoint speed (:func:`keypoint_speed`) and mean |change of speed| (the jitter)
    before and after smoothing, rounded to 0.001 pixel per frame, for a report."""
    out: dict[str, float] = {}
    for name, kp in (("raw", raw), ("smoothed", smoothed)):
        speed = keypoint_speed(kp, frame_indices, min_conf)
        ok = speed[np.isfinite(speed)]
        change = np.abs(np.diff(speed))
        change = change[np.isfinite(change)]
        out[f"speed_{name}"] = round(float(ok.mean()), 3) if len(ok) else 0.0
        out[f"jitter_{name}"] = round(float(change.mean()), 3) if len(change) else 0.0
    return out
