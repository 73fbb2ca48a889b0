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

The cheap checks come first (every argument, the checkpoint, the first frame and its person,
the ground truth), then the long work (posing a driving video, the rollout), so a bad input
costs seconds, not a pose pass; a failure leaves no output behind.

Outputs next to ``OUT.mp4``: ``OUT.gif`` (driving | retargeted | result), ``OUT_poses/``
(the labels the model was given, frame{N}.png: `posecast predict --poses` takes them),
``OUT_preview.png`` (the skeletons over the first frame, :mod:`posecast.inference.preview`)
and, with ground truth, ``OUT_psnr.png`` (PSNR per frame, beside copying the first frame).
"""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image

from ..data.lab import load_pose_folder
from ..data.prepare import PrepareError, load_first_frame_keypoints, video_fps
from ..poses.extract import estimate_frames, kept_sequence
from ..poses.draw import draw_label
from ..poses.estimate import MediaPipePose, PoseEstimator
from ..poses.framing import center_box, crop_box, crop_resize, estimate_pose, first_frame_box, keypoints_into
from ..poses.keypoints import PoseSequence, load_keypoints
from ..poses.retarget import retarget
from ..poses.source import FrameSource, common_size, list_images, open_source
from .preview import write_preview

KEYPOINTS_FILE = "keypoints.npz"
PREVIEW_FRAMES = 5  # driving frames in the preview, after the first frame's own pose


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
    first_index: int = 0  # the first kept frame's place in the source (for the preview's captions)

    def __len__(self) -> int:
        return len(self.keypoints.keypoints) if self.keypoints is not None else len(self.labels)

    def frame_number(self, t: int) -> int:
        """The source frame (or label image) number of row ``t``."""
        if self.keypoints is not None:
            return int(self.keypoints.frame_indices[t])
        return self.first_index + t


@dataclass
class Inputs:
    """The model's inputs at the frame size (W, H), and what they came from."""

    first: np.ndarray  # uint8 [H, W, 3]: the first frame, cropped and resized
    driving_labels: np.ndarray  # uint8 [T, H, W, 3]: the driving poses as drawn (or given)
    labels: np.ndarray  # uint8 [T, H, W, 3]: what the model is given
    driving: Driving
    first_pose: np.ndarray | None = None  # [18, 3]: the first frame's own pose in frame pixels
    poses: np.ndarray | None = None  # [T, 18, 3]: the retargeted poses in frame pixels

    @property
    def mode(self) -> str:
        """"keypoints" (retargeted) or "labels" (used as they are)."""
        return "keypoints" if self.poses is not None else "labels"


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
    mean_psnr: float | None = None  # frames 1..T-1 against the truth
    baseline_psnr: float | None = None  # the first frame copied forward, the same frames and truth
    preview: Path | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        """A few lines for a person."""
        how = "retargeted keypoints" if self.mode == "keypoints" else "label images as they are (no retargeting)"
        lines = [f"animated {self.frames} frames driven by {how}",
                 f"video: {self.mp4} and {self.gif} (driving | retargeted | result)",
                 f"labels given to the model: {self.poses_dir}"]
        if self.preview is not None:
            lines.append(f"skeletons over the first frame: {self.preview}")
        if self.missing:
            lines.append(f"driving frames without a person (left out): {len(self.missing)}")
        if self.psnr_plot is not None:
            lines.append(f"PSNR against the truth: mean {self.mean_psnr:.2f} dB (copying the first frame forward: "
                         f"{self.baseline_psnr:.2f} dB), per frame in {self.psnr_plot}")
            if self.mean_psnr <= self.baseline_psnr:
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


def check_numbers(start: int = 0, max_frames: int | None = None, fps: float | None = None) -> None:
    """AnimateError naming the first of ``start``, ``max_frames``, ``fps`` out of range."""
    if start < 0:
        raise AnimateError(f"start: must be 0 or more, got {start}")
    if max_frames is not None and max_frames < 2:
        raise AnimateError(f"max_frames: at least 2 driving frames are needed, got {max_frames}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise AnimateError(f"fps: must be a positive frame rate, got {fps}")


def check_out(out: str | Path) -> Path:
    """``out`` as the .mp4 to write; AnimateError when it cannot be written there."""
    out = Path(out)
    if out.is_dir() or out.with_suffix(".mp4").is_dir():
        raise AnimateError(f"{out}: is a folder; give the video's file name (such as {out / 'dance.mp4'})")
    if out.suffix.lower() not in ("", ".mp4"):
        raise AnimateError(f"{out}: the output must be an .mp4 (the .gif and the rest go beside it)")
    out = out.with_suffix(".mp4")
    parent = next(p for p in (out.parent, *out.parent.parents) if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise AnimateError(f"{out}: cannot write under {parent}")
    return out


def check_device(device: str) -> None:
    """AnimateError unless ``device`` names a torch device that this machine has."""
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise AnimateError(f"device: {device!r} is not a device ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AnimateError(f"device: {device!r}, but CUDA is not available here")


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
    return Driving(str(folder), labels=labels, first_index=start)


@dataclass(frozen=True)
class _Frames:
    """The first ``limit`` frames of a FrameSource (what :func:`estimate_frames` reads of it):
    a driving video is posed only as far as the frames that will be used."""

    source: FrameSource
    limit: int | None

    @property
    def path(self) -> Path:
        return self.source.path

    @property
    def count(self) -> int | None:
        counts = [c for c in (self.source.count, self.limit) if c is not None]
        return min(counts) if counts else None

    def frames(self) -> Iterator[Any]:
        return itertools.islice(self.source.frames(), self.limit)


def pose_video(source: FrameSource, estimator: PoseEstimator | None = None, *, start: int = 0,
               max_frames: int | None = None, progress: bool = False) -> Driving:
    """Pose a driving video (tracking, then smoothed) up to frame ``start + max_frames``; the
    long part of animating from a video."""
    holder = _Estimator(estimator)
    limit = None if max_frames is None else start + max_frames
    try:
        est = holder.get()
        poses, names = estimate_frames(_Frames(source, limit), lambda image, _n: estimate_pose(image, est), progress)
    finally:
        holder.close()
    seq = kept_sequence(poses, names, source.size, smooth=True)
    return _slice(Driving(str(source.path), keypoints=seq, fps=video_fps(source) or 30.0, missing=seq.missing),
                  start, max_frames)


def open_driving(driving: str | Path, keypoints: str | Path | None = None, *, start: int = 0,
                 max_frames: int | None = None) -> Driving | FrameSource:
    """The cheap part of reading the driving poses: a ``keypoints`` file or a pose folder comes
    back as Driving (frames ``start`` .. ``start + max_frames``); a video is only opened and
    checked, and comes back as its FrameSource for :func:`pose_video`."""
    path = Path(driving)
    if keypoints is not None:
        if not Path(keypoints).is_file():
            raise AnimateError(f"{keypoints}: no such keypoints file")
        return _slice(Driving(str(keypoints), keypoints=load_keypoints(keypoints)), start, max_frames)
    if path.is_dir() and (path / KEYPOINTS_FILE).is_file():
        return _slice(Driving(str(path), keypoints=load_keypoints(path / KEYPOINTS_FILE)), start, max_frames)
    if path.is_dir():
        return _slice(_label_folder(path, start, max_frames), 0, None)
    return open_source(path)  # PoseInputError: missing, or not a readable video


def load_driving(driving: str | Path, keypoints: str | Path | None = None, *,
                 estimator: PoseEstimator | None = None, start: int = 0, max_frames: int | None = None,
                 progress: bool = False) -> Driving:
    """The driving poses from ``keypoints`` (a keypoints.npz), a pose folder (its keypoints.npz,
    else its label images) or a video (poses estimated frame by frame and smoothed), frames
    ``start`` .. ``start + max_frames``."""
    d = open_driving(driving, keypoints, start=start, max_frames=max_frames)
    if isinstance(d, Driving):
        return d
    return pose_video(d, estimator, start=start, max_frames=max_frames, progress=progress)


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


def first_pose(image: np.ndarray, estimator: PoseEstimator | None, name: str) -> np.ndarray:
    """The pose [18, 3] of the person of the first frame (static-image detection: one photo);
    AnimateError naming the image when nobody is found."""
    holder = _Estimator(estimator, static=True)
    try:
        pose = estimate_pose(image, holder.get())
    finally:
        holder.close()
    if pose is None:
        raise AnimateError(f"{name}: no person found in the first frame; use another photo, or drive "
                           "it with label images (a pose folder without keypoints.npz)")
    return pose


def _recorded_pose(image: str | Path) -> np.ndarray | None:
    """The pose `posecast prepare` recorded for ``image`` when it is a prepared dataset's first
    frame (so that the frame it labelled is not posed again), else None."""
    try:
        return load_first_frame_keypoints(image)
    except PrepareError as err:
        raise AnimateError(str(err)) from None


def _retargeted(first: np.ndarray, target: np.ndarray, d: Driving, size: tuple[int, int], name: str) -> Inputs:
    """Keypoints route: the first frame cropped around its pose ``target`` (image pixels), the
    driving skeleton framed the same way and retargeted onto it."""
    aspect = size[0] / size[1]
    box = first_frame_box(target, (first.shape[1], first.shape[0]), size)  # a dataset frame: as it is
    target_m = keypoints_into(target, box, size)
    seq = d.keypoints
    drv_m = keypoints_into(seq.keypoints, crop_box(seq.keypoints, seq.image_size, aspect), size)
    try:
        moved = retarget(drv_m, target_m)
    except ValueError as err:
        raise AnimateError(f"cannot retarget the driving poses onto {name}: {err} (the whole body, "
                           "head to feet, must be visible in the first frame and the driving video)") from err
    labels = draw_labels(moved, size)
    labels[0] = draw_labels(target_m[None], size)[0]  # frame 0 is the first frame: its own pose (read by
    # a model with model.first_pose_cond; the rollout never draws frame 0)
    return Inputs(crop_resize(first, box, size), draw_labels(drv_m, size), labels, d,
                  first_pose=target_m, poses=snap(moved))


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, 3, H, W]."""
    return torch.from_numpy(np.require(images, np.uint8, ["C", "W"])).permute(0, 3, 1, 2).contiguous()


def _labels_route(first: np.ndarray, d: Driving, size: tuple[int, int]) -> Inputs:
    """Labels route: the first frame at ``size`` (a centred crop if its aspect differs), the
    label images resized, used as they are."""
    if first.shape[:2] != (size[1], size[0]):
        first = crop_resize(first, center_box((first.shape[1], first.shape[0]), size[0] / size[1]), size)
    labels = _resize_all(d.labels, size)
    return Inputs(first, labels, labels, d)


def prepare_inputs(first_frame: str | Path, driving: str | Path | Driving, size: tuple[int, int], *,
                   driving_keypoints: str | Path | None = None, estimator: PoseEstimator | None = None,
                   start: int = 0, max_frames: int | None = None, progress: bool = False) -> Inputs:
    """The model's inputs at ``size`` = (W, H). The first frame is read and, on the keypoints
    route, its person found before a driving video is posed (the long part)."""
    first = read_rgb(first_frame)
    d = driving if isinstance(driving, Driving) else open_driving(
        driving, driving_keypoints, start=start, max_frames=max_frames)
    if isinstance(d, Driving) and d.keypoints is None:
        return _labels_route(first, d, size)
    target = _recorded_pose(first_frame) if isinstance(first_frame, (str, Path)) else None
    if target is None:  # not a prepared dataset's first frame: find the person in it
        target = first_pose(first, estimator, str(first_frame))
    if not isinstance(d, Driving):
        d = pose_video(d, estimator, start=start, max_frames=max_frames, progress=progress)
    return _retargeted(first, target, d, size, str(first_frame))


def load_truth(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """Ground-truth frames uint8 [T, 3, H, W] at ``size`` = (W, H): a folder of frame{N}.png or
    an .npz with ``frames`` uint8 [T, H, W, 3] (the lab's gt/K.npz); at least 2 frames."""
    path = Path(path)
    if not path.exists():
        raise AnimateError(f"{path}: no such ground-truth folder or .npz")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                frames = np.asarray(data["frames"] if "frames" in data else data[list(data.keys())[0]])
        except (OSError, ValueError, IndexError) as err:
            raise AnimateError(f"{path}: not a readable .npz of frames ({err})") from err
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise AnimateError(f"{path}: expected frames [T, H, W, 3], got {frames.shape}")
        truth = _as_tensor(_resize_all(frames.astype(np.uint8), size))
    else:
        truth = load_pose_folder(path, (size[1], size[0]))
    if len(truth) < 2:
        raise AnimateError(f"{path}: the ground truth has {len(truth)} frame(s); at least 2 are needed for PSNR")
    return truth


def _psnr_plot(pred: torch.Tensor, truth: torch.Tensor, out: Path) -> tuple[float, float, Path]:
    """Mean PSNR of frames 1..T-1 (of the shorter of the two), the same for frame 0 copied
    forward (the baseline a model must beat), and their plot at ``out``."""
    from ..metrics import psnr
    from ..analysis.plots import plot_psnr_per_frame
    from ..perf import to_float

    T = min(len(pred), len(truth))
    target = to_float(truth[1:T])
    values = psnr(pred[1:T], target).numpy()
    copied = psnr(pred[:1].expand(T - 1, -1, -1, -1), target).numpy()  # pred[0] is the first frame
    plot_psnr_per_frame({"animate": values, "copy frame 0": copied}, out,
                        title="PSNR per frame of the animation against the truth")
    return float(values.mean()), float(copied.mean()), out


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


def output_paths(out: Path) -> dict[str, Path]:
    """Everything :func:`animate` may write for ``out`` (an .mp4)."""
    return {"mp4": out, "gif": out.with_suffix(".gif"), "poses": out.with_name(f"{out.stem}_poses"),
            "preview": out.with_name(f"{out.stem}_preview.png"), "psnr": out.with_name(f"{out.stem}_psnr.png")}


@contextlib.contextmanager
def removed_on_error(out: Path) -> Iterator[None]:
    """Create ``out``'s folder for the block; if the block fails, remove what it wrote: the
    folders it created, else the outputs named by :func:`output_paths`."""
    top = next((p for p in reversed([out.parent, *out.parent.parents]) if not p.exists()), None)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if top is not None:
            shutil.rmtree(top, ignore_errors=True)
        else:
            for path in output_paths(out).values():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


def preview_tiles(inputs: Inputs, frames: int = PREVIEW_FRAMES) -> list[tuple[str, dict]]:
    """The preview's tiles: (caption, skeleton) for the first frame's own pose (keypoints route)
    and the first ``frames`` driving frames as the model will get them."""
    d, n = inputs.driving, min(frames, len(inputs.labels))
    if inputs.poses is None:
        return [(f"label {d.frame_number(t)} (as it is)", {"label": inputs.labels[t]}) for t in range(n)]
    tiles = [("first frame: its own pose", {"keypoints": inputs.first_pose})]
    return tiles + [(f"driving frame {d.frame_number(t)}, retargeted", {"keypoints": inputs.poses[t]})
                    for t in range(n)]


def _load(checkpoint: str | Path, device: str, precision: str | None) -> tuple[torch.nn.Module, Any, str]:
    """The model in eval mode, its config and the rollout precision (``auto`` resolved)."""
    from .load import load_model
    from ..perf import resolve_precision

    model, cfg = load_model(checkpoint, device)
    prec = resolve_precision(precision or cfg.runtime.precision, device)
    return model, cfg, prec


def _checked_model(checkpoint: str | Path, first_frame: str | Path, out: str | Path, device: str,
                   precision: str | None, **numbers: Any) -> tuple[Path, torch.nn.Module, Any, str]:
    """The cheap checks in order (arguments, output path, first frame readable, device, then the
    checkpoint): (the .mp4 to write, the model, its config, the precision)."""
    check_numbers(**numbers)
    out = check_out(out)
    read_rgb(first_frame)
    check_device(device)
    return (out, *_load(checkpoint, device, precision))


def preview(checkpoint: str | Path, first_frame: str | Path, driving: str | Path, out: str | Path, *,
            driving_keypoints: str | Path | None = None, estimator: PoseEstimator | None = None,
            start: int = 0, max_frames: int | None = None, device: str = "cpu") -> tuple[Path, Inputs]:
    """Only the check before generating: write ``OUT_preview.png`` (the first driving frames'
    skeletons, retargeted, over the first frame) for ``out`` and stop. Returns (its path, the
    inputs the model would get)."""
    out, _model, cfg, _prec = _checked_model(checkpoint, first_frame, out, device, None,
                                            start=start, max_frames=max_frames)
    size = (cfg.data.frame_W, cfg.data.frame_H)
    inputs = prepare_inputs(first_frame, driving, size, driving_keypoints=driving_keypoints,
                            estimator=estimator, start=start, max_frames=max_frames)
    path = output_paths(out)["preview"]
    with removed_on_error(out):
        write_preview(path, inputs.first, preview_tiles(inputs), size)
    return path, inputs


def animate(checkpoint: str | Path, first_frame: str | Path, driving: str | Path | Driving,
            out: str | Path, *, driving_keypoints: str | Path | None = None, truth: str | Path | None = None,
            estimator: PoseEstimator | None = None, start: int = 0, max_frames: int | None = None,
            fps: float | None = None, z_mode: str | None = None, seed: int = 0, device: str = "cpu",
            precision: str | None = None, progress: bool = False) -> AnimateResult:
    """Make the person of ``first_frame`` perform the poses of ``driving`` with the model of
    ``checkpoint`` and write ``out`` (.mp4), its .gif, the labels, the preview and, with ``truth``
    (a folder of frame{N}.png or an .npz), the PSNR-per-frame plot. See the module docstring for
    the two ways to drive; ``estimator`` replaces MediaPipe (the ``pose`` extra) for every pose
    estimate."""
    from ..rollout import predict

    t0 = time.perf_counter()
    out, model, cfg, prec = _checked_model(checkpoint, first_frame, out, device, precision,
                                           start=start, max_frames=max_frames, fps=fps)
    size = (cfg.data.frame_W, cfg.data.frame_H)
    truth_frames = load_truth(truth, size) if truth is not None else None
    inputs = prepare_inputs(first_frame, driving, size, driving_keypoints=driving_keypoints,
                            estimator=estimator, start=start, max_frames=max_frames, progress=progress)
    pred = predict(model, _as_tensor(inputs.first[None]), _as_tensor(inputs.labels)[None],
                   z_mode=z_mode or cfg.inference.z_infer, seed=seed, precision=prec,
                   mirror=cfg.inference.mirror_average)[0].cpu()  # [T, 3, H, W]
    paths = output_paths(out)
    scores: tuple[float | None, float | None, Path | None] = (None, None, None)
    with removed_on_error(out):
        panels = [_as_tensor(inputs.driving_labels), _as_tensor(inputs.labels), pred]
        mp4, gif, poses_dir = _write_outputs(out, panels, inputs.labels, fps or inputs.driving.fps)
        shown = write_preview(paths["preview"], inputs.first, preview_tiles(inputs), size)
        if truth_frames is not None:
            scores = _psnr_plot(pred, truth_frames, paths["psnr"])
    mean, baseline, plot = scores
    return AnimateResult(mp4, gif, poses_dir, len(inputs.labels), inputs.mode, inputs.driving.missing,
                         psnr_plot=plot, mean_psnr=mean, baseline_psnr=baseline, preview=shown,
                         seconds=time.perf_counter() - t0)
