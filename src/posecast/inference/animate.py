"""Animate a person: the person of one photo performs the poses of a driving video.

Two ways to drive:

* **keypoints** (a driving video, a pose folder with the ``keypoints.npz`` of `posecast poses`,
  or ``driving_keypoints``): the driving skeleton is retargeted onto the first frame's own pose
  (estimated from the photo; :func:`posecast.poses.retarget.retarget`: same body height, feet
  on the same spot), drawn as labels at the model's frame size, and rolled out;
* **labels** (a pose folder of label images without ``keypoints.npz``, such as the dataset's
  ``train_label``): the label images are used as they are, resized to the model's size, with
  no retargeting. Right only when the photo and the labels share the person's size and place
  in the frame (the same person and camera, as in the lab's dataset).

Outputs next to ``OUT.mp4``: ``OUT.gif`` (driving | retargeted | result), ``OUT_poses/``
(the labels the model was given, frame{N}.png: `posecast predict --poses` takes them) and,
with ground truth, ``OUT_psnr.png`` (PSNR per frame).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..data.lab import load_pose_folder
from ..data.prepare import video_fps
from ..poses.extract import estimate_frames, kept_sequence
from ..poses.draw import draw_label
from ..poses.estimate import MediaPipePose, PoseEstimator
from ..poses.framing import center_box, crop_box, crop_resize, estimate_pose, first_frame_box, keypoints_into
from ..poses.keypoints import PoseSequence, load_keypoints
from ..poses.retarget import retarget
from ..poses.source import common_size, list_images, open_source

KEYPOINTS_FILE = "keypoints.npz"


class AnimateError(ValueError):
    """An input that cannot be animated; the message says which and why."""


@dataclass
class Driving:
    """The driving poses: ``keypoints`` (source pixels) or ready ``labels`` uint8 [T, H, W, 3]."""

    source: str
    keypoints: PoseSequence | None = None
    labels: np.ndarray | None = None
    fps: float = 30.0
    missing: list[int] = field(default_factory=list)  # driving frames without a person

    def __len__(self) -> int:
        return len(self.keypoints.keypoints) if self.keypoints is not None else len(self.labels)


@dataclass(frozen=True)
class AnimateResult:
    """What :func:`animate` wrote and measured."""

    mp4: Path
    gif: Path
    poses_dir: Path
    frames: int
    mode: str  # "keypoints" (retargeted) or "labels" (used as they are)
    missing: list[int] = field(default_factory=list)
    psnr_plot: Path | None = None
    mean_psnr: float | None = None
    seconds: float = 0.0
    copy_psnr: float | None = None  # copying the first frame forward, over the same truth frames

    def describe(self) -> str:
        """A few lines for a person."""
        how = "retargeted keypoints" if self.mode == "keypoints" else "label images as they are (no retargeting)"
        lines = [f"animated {self.frames} frames driven by {how}",
                 f"video: {self.mp4} and {self.gif} (driving | retargeted | result)",
                 f"labels given to the model: {self.poses_dir}"]
        if self.missing:
            lines.append(f"driving frames without a person (left out): {len(self.missing)}")
        if self.psnr_plot is not None:
            lines.append(f"PSNR against the truth: mean {self.mean_psnr:.2f} dB (copying the first frame forward: "
                         f"{self.copy_psnr:.2f} dB), per frame in {self.psnr_plot}")
            if self.mean_psnr <= self.copy_psnr:
                lines.append("warning: the animation does not beat copying the first frame: the model has not "
                             "learnt to draw this person from the poses (train longer, or with --preset best)")
        lines.append(f"time: {self.seconds:.1f} s")
        return "\n".join(lines)


class _Estimator:
    """The given estimator, or MediaPipe made on first use (``static``: detection on every image,
    for photos; else tracking, for videos) and closed by :meth:`close`."""

    def __init__(self, estimator: PoseEstimator | None, static: bool = False) -> None:
        self._given, self._own, self._static = estimator, None, static

    def get(self) -> PoseEstimator:
        if self._given is not None:
            return self._given
        if self._own is None:
            self._own = MediaPipePose(static_image_mode=self._static)
        return self._own

    def close(self) -> None:
        if self._own is not None:
            self._own.close()


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 [H, W, 3]; AnimateError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise AnimateError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError) as err:
        raise AnimateError(f"{path}: not a readable image ({err})") from err


def _slice(d: Driving, start: int, max_frames: int | None) -> Driving:
    """Keep driving frames ``start`` .. ``start + max_frames`` (label folders are sliced before
    they are read, see :func:`_label_folder`)."""
    end = None if max_frames is None else start + max_frames
    if d.keypoints is not None:
        k = d.keypoints
        d.keypoints = PoseSequence(k.keypoints[start:end], k.image_size, k.frame_indices[start:end],
                                   k.frame_names[start:end], k.missing)
    if len(d) < 2:
        raise AnimateError(f"{d.source}: {len(d)} driving frame(s) from frame {start}; at least 2 are needed")
    return d


def _label_folder(folder: Path, start: int = 0, max_frames: int | None = None) -> Driving:
    """Images ``start`` .. ``start + max_frames`` of a folder of label images (natural order,
    one size): the labels route."""
    images = list_images(folder)[start:None if max_frames is None else start + max_frames]
    if not images:
        raise AnimateError(f"{folder}: no label images from image {start} on")
    common_size(images)  # PoseInputError naming two files of different sizes
    labels = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in images])
    return Driving(str(folder), labels=labels)


def _video_keypoints(path: Path, estimator: _Estimator, progress: bool) -> Driving:
    source = open_source(path)
    est = estimator.get()
    poses, names = estimate_frames(source, lambda image, _name: estimate_pose(image, est), progress)
    seq = kept_sequence(poses, names, source.size, smooth=True)
    return Driving(str(path), keypoints=seq, fps=video_fps(source) or 30.0, missing=seq.missing)


def load_driving(driving: str | Path, keypoints: str | Path | None = None, *,
                 estimator: PoseEstimator | None = None, start: int = 0, max_frames: int | None = None,
                 progress: bool = False) -> Driving:
    """The driving poses from ``keypoints`` (a keypoints.npz), a pose folder (its keypoints.npz,
    else its label images) or a video (poses estimated frame by frame and smoothed), frames
    ``start`` .. ``start + max_frames``."""
    holder = _Estimator(estimator)
    path = Path(driving)
    try:
        if keypoints is not None:
            d = Driving(str(keypoints), keypoints=load_keypoints(keypoints))
        elif path.is_dir() and (path / KEYPOINTS_FILE).is_file():
            d = Driving(str(path), keypoints=load_keypoints(path / KEYPOINTS_FILE))
        elif path.is_dir():
            return _slice(_label_folder(path, start, max_frames), 0, None)
        else:
            d = _video_keypoints(path, holder, progress)
    finally:
        holder.close()
    return _slice(d, start, max_frames)


def snap(keypoints: np.ndarray) -> np.ndarray:
    """Round (x, y) to 1/1000 px before drawing, so that the float noise of a similarity
    transform and its inverse never moves a joint across a pixel edge."""
    kp = np.array(keypoints, np.float64)
    kp[..., :2] = np.round(kp[..., :2], 3)
    return kp


def draw_labels(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Poses [T, 18, 3] already in ``size`` = (W, H) frame pixels -> labels uint8 [T, H, W, 3]."""
    return np.stack([draw_label(snap(kp), size, size) for kp in keypoints])


def _resize_all(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if images.shape[1:3] == (size[1], size[0]):
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize(size, Image.BILINEAR)) for im in images])


def _first_pose(image: np.ndarray, estimator: _Estimator, name: str) -> np.ndarray:
    pose = estimate_pose(image, estimator.get())
    if pose is None:
        raise AnimateError(f"{name}: no person found in the first frame; use another photo, or drive "
                           "it with label images (a pose folder without keypoints.npz)")
    return pose


def _retargeted(first: np.ndarray, d: Driving, size: tuple[int, int], estimator: _Estimator,
                name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints route: (first frame at ``size``, driving labels, retargeted labels)."""
    aspect = size[0] / size[1]
    target = _first_pose(first, estimator, name)
    box = first_frame_box(target, (first.shape[1], first.shape[0]), size)  # a dataset frame: as it is
    target_m = keypoints_into(target, box, size)
    seq = d.keypoints
    drv_m = keypoints_into(seq.keypoints, crop_box(seq.keypoints, seq.image_size, aspect), size)
    try:
        moved = retarget(drv_m, target_m)
    except ValueError as err:
        raise AnimateError(f"cannot retarget the driving poses onto {name}: {err} (the whole body, "
                           "head to feet, must be visible in the first frame and the driving video)") from err
    return crop_resize(first, box, size), draw_labels(drv_m, size), draw_labels(moved, size)


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, 3, H, W]."""
    return torch.from_numpy(np.require(images, np.uint8, ["C", "W"])).permute(0, 3, 1, 2).contiguous()


def _labels_route(first: np.ndarray, d: Driving, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels route: (first frame at ``size``, driving labels, the same labels)."""
    if first.shape[:2] != (size[1], size[0]):
        first = crop_resize(first, center_box((first.shape[1], first.shape[0]), size[0] / size[1]), size)
    labels = _resize_all(d.labels, size)
    return first, labels, labels


def load_truth(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """Ground-truth frames uint8 [T, 3, H, W] at ``size`` = (W, H): a folder of frame{N}.png or
    an .npz with ``frames`` uint8 [T, H, W, 3] (the lab's gt/K.npz)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as data:
            frames = np.asarray(data["frames"] if "frames" in data else data[list(data.keys())[0]])
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise AnimateError(f"{path}: expected frames [T, H, W, 3], got {frames.shape}")
        return _as_tensor(_resize_all(frames.astype(np.uint8), size))
    return load_pose_folder(path, (size[1], size[0]))


def _psnr_plot(pred: torch.Tensor, truth: torch.Tensor, out: Path) -> tuple[float, float, Path]:
    """Mean PSNR of frames 1..T-1 (of the shorter of the two), that of copying frame 0 (the first
    frame given) forward over them, and the plot of both at ``out``."""
    from ..metrics import psnr
    from ..analysis.plots import plot_psnr_per_frame
    from ..perf import to_float

    T = min(len(pred), len(truth))
    if T < 2:
        raise AnimateError(f"the ground truth has {len(truth)} frame(s); at least 2 are needed for PSNR")
    values = psnr(pred[1:T], to_float(truth[1:T])).numpy()
    copy = psnr(pred[:1].expand(T - 1, -1, -1, -1), to_float(truth[1:T])).numpy()  # pred[0]: the first frame
    plot_psnr_per_frame({"animate": values, "copying frame 0": copy}, out,
                        title="PSNR per frame of the animation against the truth")
    return float(values.mean()), float(copy.mean()), out


def _write_outputs(out: Path, panels: list[torch.Tensor], labels: np.ndarray, fps: float) -> tuple[Path, Path, Path]:
    """OUT.mp4, OUT.gif (the panels side by side) and OUT_poses/frame{N}.png (the labels)."""
    from ..io.video import side_by_side, write_gif, write_mp4

    strip = side_by_side(*panels, labels=["driving", "retargeted", "result"])
    rate = max(1, round(fps))
    mp4 = write_mp4(out, strip, fps=rate)
    gif = write_gif(out.with_suffix(".gif"), strip, fps=rate)
    poses_dir = out.with_name(f"{out.stem}_poses")
    poses_dir.mkdir(parents=True, exist_ok=True)
    for old in poses_dir.glob("frame*.png"):  # a longer earlier run's labels must not linger
        old.unlink()
    for t, label in enumerate(labels):
        Image.fromarray(label).save(poses_dir / f"frame{t}.png")
    return mp4, gif, poses_dir


def _load(checkpoint: str | Path, device: str, precision: str | None) -> tuple[torch.nn.Module, Any, str]:
    """The model in eval mode, its config and the rollout precision (``auto`` resolved)."""
    from .load import load_model
    from ..perf import resolve_precision

    model, cfg = load_model(checkpoint, device)
    prec = resolve_precision(precision or cfg.runtime.precision, device)
    return model, cfg, prec


def prepare_inputs(first_frame: str | Path, driving: str | Path | Driving, size: tuple[int, int], *,
                   driving_keypoints: str | Path | None = None, estimator: PoseEstimator | None = None,
                   start: int = 0, max_frames: int | None = None,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, Driving]:
    """The model's inputs at ``size`` = (W, H): (first frame uint8 [H, W, 3], driving labels and
    the labels to roll out, both uint8 [T, H, W, 3], the driving poses)."""
    first = read_rgb(first_frame)
    d = driving if isinstance(driving, Driving) else load_driving(
        driving, driving_keypoints, estimator=estimator, start=start, max_frames=max_frames, progress=progress)
    holder = _Estimator(estimator, static=True)  # the photo: one image, no tracking
    try:
        if d.keypoints is not None:
            return (*_retargeted(first, d, size, holder, str(first_frame)), d)
        return (*_labels_route(first, d, size), d)
    finally:
        holder.close()


def animate(checkpoint: str | Path, first_frame: str | Path, driving: str | Path | Driving,
            out: str | Path, *, driving_keypoints: str | Path | None = None, truth: str | Path | None = None,
            estimator: PoseEstimator | None = None, start: int = 0, max_frames: int | None = None,
            fps: float | None = None, z_mode: str | None = None, seed: int = 0, device: str = "cpu",
            precision: str | None = None, progress: bool = False) -> AnimateResult:
    """Make the person of ``first_frame`` perform the poses of ``driving`` with the model of
    ``checkpoint`` and write ``out`` (.mp4), its .gif, the labels and, with ``truth`` (a folder of
    frame{N}.png or an .npz), the PSNR-per-frame plot. See the module docstring for the two
    ways to drive; ``estimator`` replaces MediaPipe (the ``pose`` extra) for every pose estimate."""
    from ..rollout import predict

    t0 = time.perf_counter()
    out = Path(out).with_suffix(".mp4")
    model, cfg, prec = _load(checkpoint, device, precision)
    size = (cfg.data.frame_W, cfg.data.frame_H)
    first, drv_labels, labels, d = prepare_inputs(first_frame, driving, size, driving_keypoints=driving_keypoints,
                                                  estimator=estimator, start=start, max_frames=max_frames,
                                                  progress=progress)
    pred = predict(model, _as_tensor(first[None]), _as_tensor(labels)[None],
                   z_mode=z_mode or cfg.inference.z_infer, seed=seed, precision=prec,
                   mirror=cfg.inference.mirror_average)[0].cpu()  # [T, 3, H, W]
    out.parent.mkdir(parents=True, exist_ok=True)
    panels = [_as_tensor(drv_labels), _as_tensor(labels), pred]
    mp4, gif, poses_dir = _write_outputs(out, panels, labels, fps or d.fps)
    mean, copy, plot = (None, None, None)
    if truth is not None:
        mean, copy, plot = _psnr_plot(pred, load_truth(truth, size), out.with_name(f"{out.stem}_psnr.png"))
    mode = "keypoints" if d.keypoints is not None else "labels"
    return AnimateResult(mp4, gif, poses_dir, len(labels), mode, d.missing, plot, mean, time.perf_counter() - t0,
                         copy_psnr=copy)
