"""Framing a person for the model: one crop box of the model's aspect around the keypoints,
the crop resized to the model's frame size, keypoints mapped into it, and pose estimation on
small images (upscaled first).

Crop boxes are floats on purpose: Pillow resizes from a float box, so the crop has exactly
the frame's aspect and keypoints map into the frame by one scale for x and y (a similarity,
which retargeting then undoes exactly).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from .errors import PoseError
from .estimate import PoseEstimator
from .keypoints import NUM_KEYPOINTS


@dataclass(frozen=True)
class CropBox:
    """A crop of a source image in its pixels (floats); ``clipped`` when the person's box with
    its margin did not fit in the image at the requested aspect (the crop then cuts into it)."""

    left: float
    top: float
    width: float
    height: float
    clipped: bool = False

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom), as Pillow's ``resize(box=...)`` takes it."""
        return (self.left, self.top, self.left + self.width, self.top + self.height)

    def to_dict(self) -> dict[str, float | bool]:
        """Plain data for a JSON report (pixels rounded to 0.01)."""
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def person_boxes(keypoints: np.ndarray, min_conf: float = 0.3) -> np.ndarray:
    """Per-pose bounding boxes [T, 4] (x0, y0, x1, y1) of the confident joints of [T, 18, 3];
    NaN rows for poses without a confident joint."""
    kp = np.asarray(keypoints, np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    good = (kp[..., 2] >= min_conf) & np.isfinite(kp[..., :2]).all(axis=-1)  # [T, 18]
    x, y = kp[..., 0], kp[..., 1]
    boxes = np.stack([np.where(good, x, np.inf).min(1), np.where(good, y, np.inf).min(1),
                      np.where(good, x, -np.inf).max(1), np.where(good, y, -np.inf).max(1)], axis=1)
    boxes[~good.any(axis=1)] = np.nan
    return boxes


def crop_box(keypoints: np.ndarray, image_size: tuple[int, int], aspect: float, *,
             margin: float = 0.15, percentile: float = 2.0, min_conf: float = 0.3) -> CropBox:
    """One crop of width / height = ``aspect`` around the person in poses [T, 18, 3] (or one
    [18, 3]) of an image of ``image_size`` = (W, H).

    The person's box is the ``percentile`` / 100 - ``percentile`` of the per-frame boxes (the
    union of all frames, robust to a few wrong joints), grown by ``margin`` x its height on every
    side (head top above the eyes, feet below the ankles), widened or heightened to ``aspect``
    about its centre, shrunk to fit the image if it must (``clipped``) and shifted inside it.
    """
    boxes = person_boxes(keypoints, min_conf)
    boxes = boxes[np.isfinite(boxes).all(axis=1)]
    if len(boxes) == 0:
        raise PoseError("no confident joint in any pose: cannot place a crop around the person")
    x0, y0 = np.percentile(boxes[:, 0], percentile), np.percentile(boxes[:, 1], percentile)
    x1, y1 = np.percentile(boxes[:, 2], 100 - percentile), np.percentile(boxes[:, 3], 100 - percentile)
    pad = margin * max(y1 - y0, 1.0)  # the person's height: a wide union box must not inflate it
    need_w, need_h = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    h = max(need_h, need_w / aspect)
    w = h * aspect
    W, H = image_size
    shrink = min(1.0, W / w, H / h)
    w, h = w * shrink, h * shrink
    left = float(np.clip((x0 + x1) / 2 - w / 2, 0.0, W - w))
    top = float(np.clip((y0 + y1) / 2 - h / 2, 0.0, H - h))
    return CropBox(left, top, float(w), float(h), clipped=bool(shrink < 1.0 - 1e-9))


def center_box(image_size: tuple[int, int], aspect: float) -> CropBox:
    """The largest centred crop of ``aspect`` (for an image without a known pose)."""
    W, H = image_size
    w, h = (H * aspect, float(H)) if W / H >= aspect else (float(W), W / aspect)
    return CropBox((W - w) / 2, (H - h) / 2, w, h)


def first_frame_box(pose: np.ndarray, image_size: tuple[int, int], size: tuple[int, int],
                    margin: float = 0.15) -> CropBox:
    """The crop of a first frame for a model of frame ``size`` = (W, H): an image already of
    that size is taken as framed (a frame of a prepared dataset or of the lab's data: cropping
    it again around its one pose would zoom in, and the person would no longer stand where the
    dataset's labels put them); any other image is cropped around the person (:func:`crop_box`)."""
    if tuple(image_size) == tuple(size):
        return CropBox(0.0, 0.0, float(size[0]), float(size[1]))
    return crop_box(pose, image_size, size[0] / size[1], margin=margin)


def crop_resize(image: np.ndarray, box: CropBox, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> the ``box`` crop resized to ``size`` = (W, H), uint8 (Lanczos)."""
    im = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    return np.asarray(im.resize(tuple(size), Image.LANCZOS, box=box.box), dtype=np.uint8)


def keypoints_into(keypoints: np.ndarray, box: CropBox, size: tuple[int, int]) -> np.ndarray:
    """Map keypoints [..., 18, 3] from source pixels into the ``size`` frame made from ``box``."""
    kp = np.array(keypoints, np.float64)
    kp[..., 0] = (kp[..., 0] - box.left) * (size[0] / box.width)
    kp[..., 1] = (kp[..., 1] - box.top) * (size[1] / box.height)
    return kp.astype(np.float32)


def estimate_pose(image: np.ndarray, estimator: PoseEstimator, min_side: int = 256) -> np.ndarray | None:
    """Run ``estimator`` on an RGB image, upscaled by an integer factor (bicubic) when its shorter
    side is under ``min_side`` (pose estimators miss people in 64x32 frames); returns the pose
    [18, 3] in the original image's pixels, or None when no person is found."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    factor = max(1, math.ceil(min_side / max(1, min(image.shape[:2]))))
    if factor > 1:
        big = Image.fromarray(image).resize((image.shape[1] * factor, image.shape[0] * factor), Image.BICUBIC)
        image = np.asarray(big, dtype=np.uint8)
    pose = estimator(image)
    if pose is None:
        return None
    pose = np.array(pose, np.float32)
    if pose.shape != (NUM_KEYPOINTS, 3):
        raise PoseError(f"the pose estimator returned shape {pose.shape}; expected (18, 3)")
    pose[:, :2] /= factor
    return pose
