"""Reader for the lab's dataset folder layout, decoded once into uint8 tensors.

    train/train_img/frame{N}.png   train/train_label/frame{N}.png
    val/val_img/frame{N}.png       val/val_label/frame{N}.png
    test/test_img/{K}/frame0.png   test/test_label/{K}/frame{N}.png   gt/{K}.npz (optional)
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

_FRAME_RE = re.compile(r"^frame(\d+)\.png$", re.IGNORECASE)


class DataError(ValueError):
    """Bad input data; the message names the file or folder."""


@dataclass
class VideoSequence:
    """One sequence: frames and poses as uint8 [T, 3, H, W]. frames may hold only frame 0."""

    name: str
    frames: torch.Tensor  # [T or 1, 3, H, W] uint8
    poses: torch.Tensor  # [T, 3, H, W] uint8
    has_gt: bool = True

    def __len__(self) -> int:
        return int(self.poses.shape[0])


def read_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Decode one image as RGB uint8 [H, W, 3], resized to size = (H, W) when it differs."""
    if path.is_dir():
        raise DataError(f"expected an image file but found a folder: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                im = _to_8bit(im)  # convert("RGB") would clip 16-bit values at 255: all white
            if im.mode != "RGB":
                # palette, RGBA, grayscale labels: composite on white so transparent = background
                if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                    rgba = im.convert("RGBA")
                    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(bg, rgba).convert("RGB")
                else:
                    im = im.convert("RGB")
            H, W = size
            if im.size != (W, H):
                im = im.resize((W, H), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer / float) grayscale -> 8-bit L, scaling the full range."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16") or (im.mode == "I" and arr.size and int(arr.max()) > 255):
        arr = arr.astype(np.float64) / 257.0  # 65535 -> 255
    elif im.mode == "F" and arr.size and float(arr.max()) <= 1.0:
        arr = arr * 255.0  # floats in [0, 1]
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def list_frames(folder: Path) -> dict[int, Path]:
    """frame{N}.png files of a folder by number (frame10 after frame9)."""
    if not folder.exists():
        raise DataError(f"missing folder: {folder}")
    if not folder.is_dir():
        raise DataError(f"expected a folder but found a file: {folder}")
    found: dict[int, Path] = {}
    for p in sorted(folder.iterdir()):
        m = _FRAME_RE.match(p.name)
        if m:
            n = int(m.group(1))
            if n in found:  # frame1.png and frame01.png (or FRAME1.PNG): which one is meant?
                raise DataError(f"two files for frame {n} in {folder}: {found[n].name} and {p.name}")
            found[n] = p
    if not found:
        raise DataError(f"no frame<N>.png images in {folder}")
    return dict(sorted(found.items()))


def _check_gaps(numbers: list[int], folder: Path) -> None:
    if numbers and numbers[-1] - numbers[0] + 1 != len(numbers):
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        warnings.warn(f"{folder}: frame numbers have gaps (missing {missing[:10]}"
                      f"{' ...' if len(missing) > 10 else ''}); frames are taken in numeric order",
                      stacklevel=3)


def _stack(paths: list[Path], size: tuple[int, int]) -> torch.Tensor:
    arr = np.stack([read_image(p, size) for p in paths])  # [T, H, W, 3]
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()  # [T, 3, H, W]


def _paired(img_dir: Path, label_dir: Path) -> tuple[list[Path], list[Path]]:
    imgs, labels = list_frames(img_dir), list_frames(label_dir)
    only_img = sorted(set(imgs) - set(labels))
    only_label = sorted(set(labels) - set(imgs))
    if only_img:
        raise DataError(f"frame {imgs[only_img[0]]} has no label in {label_dir}"
                        f" ({len(only_img)} frame(s) without a label)")
    if only_label:
        raise DataError(f"label {labels[only_label[0]]} has no frame in {img_dir}"
                        f" ({len(only_label)} label(s) without a frame)")
    numbers = list(imgs)
    _check_gaps(numbers, img_dir)
    return [imgs[n] for n in numbers], [labels[n] for n in numbers]


def load_split(root: str | Path, split: str, size: tuple[int, int] = (32, 64)) -> VideoSequence:
    """Load ``train`` or ``val`` as one sequence (the lab treats each split as one video)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    base = root / split
    if not base.is_dir():
        raise DataError(f"missing split folder: {base} (expected {split}/{split}_img and {split}/{split}_label)")
    img_paths, label_paths = _paired(base / f"{split}_img", base / f"{split}_label")
    return VideoSequence(split, _stack(img_paths, size), _stack(label_paths, size))


def load_test(root: str | Path, size: tuple[int, int] = (32, 64)) -> list[VideoSequence]:
    """Load every test sequence K: first frame, all labels, and gt/K.npz frames when present."""
    root = Path(root)
    img_root, label_root = root / "test" / "test_img", root / "test" / "test_label"
    for folder in (img_root, label_root):
        if not folder.is_dir():
            raise DataError(f"missing folder: {folder}")
    keys = sorted((p.name for p in label_root.iterdir() if p.is_dir()),
                  key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    if not keys:
        raise DataError(f"no sequence folders (0, 1, ...) in {label_root}")
    out = []
    for key in keys:
        labels = list_frames(label_root / key)
        _check_gaps(list(labels), label_root / key)
        first = img_root / key / "frame0.png"
        if not first.exists():
            raise DataError(f"test sequence {key}: missing first frame {first}")
        poses = _stack(list(labels.values()), size)
        frames = _stack([first], size)
        gt_path = root / "gt" / f"{key}.npz"
        has_gt = gt_path.exists()
        if has_gt:
            frames = _load_gt(gt_path, len(poses), size)
        out.append(VideoSequence(f"test_{key}", frames, poses, has_gt))
    return out


def _load_gt(path: Path, length: int, size: tuple[int, int]) -> torch.Tensor:
    try:
        with np.load(path) as data:
            arr = data["frames"] if "frames" in data else data[list(data.keys())[0]]
    except Exception as exc:  # numpy raises several types for a bad archive
        raise DataError(f"cannot read ground truth {path}: {exc}") from None
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 frames [T, H, W, 3], got {arr.dtype} {arr.shape}")
    if arr.shape[0] != length:
        raise DataError(f"{path}: {arr.shape[0]} frames but {length} labels")
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    if tuple(t.shape[-2:]) != tuple(size):
        t = torch.nn.functional.interpolate(t.float(), size=size, mode="bilinear",
                                            align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return t.contiguous()


def load_pose_folder(folder: str | Path, size: tuple[int, int] = (32, 64)) -> torch.Tensor:
    """All frame{N}.png pose images of a folder as uint8 [T, 3, H, W]."""
    folder = Path(folder)
    labels = list_frames(folder)
    _check_gaps(list(labels), folder)
    return _stack(list(labels.values()), size)


def load_frame(path: str | Path, size: tuple[int, int] = (32, 64)) -> torch.Tensor:
    """One image as uint8 [3, H, W]."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"image not found: {path}")
    # copy: PIL gives a read-only array, and torch warns on (and cannot own) non-writable memory
    return torch.from_numpy(read_image(path, size).copy()).permute(2, 0, 1).contiguous()
