"""Frames from a video file (decoded with PyAV) or a folder of images (read with Pillow).

Every problem with the input is a :class:`PoseInputError` with a message for a person.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from PIL import Image

from .errors import PoseInputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its position in the source, a name, and RGB pixels [H, W, 3] uint8."""

    index: int
    name: str
    image: np.ndarray


@dataclass(frozen=True)
class FrameSource:
    """A readable input: ``kind`` is "video" or "images"; ``size`` is (W, H); ``count`` the
    number of frames (None when a video's header does not say)."""

    path: Path
    kind: str
    size: tuple[int, int]
    count: int | None
    images: tuple[Path, ...] = ()

    def frames(self) -> Iterator[Frame]:
        """Decode the frames in order."""
        if self.kind == "video":
            return _video_frames(self.path)
        return _image_frames(self.images)


def natural_key(path: Path) -> tuple:
    """Sort key that orders numbers by value: frame2 before frame10."""
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` in natural order; PoseInputError when there are none."""
    images = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                    key=natural_key)
    if not images:
        raise PoseInputError(f"{folder}: the folder has no images "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, SyntaxError, ValueError) as err:
        raise PoseInputError(f"{path}: not a readable image ({err})") from err


def common_size(images: list[Path]) -> tuple[int, int]:
    """The (W, H) that all ``images`` share; PoseInputError naming two files that differ."""
    first = _image_size(images[0])
    for path in images[1:]:
        size = _image_size(path)
        if size != first:
            raise PoseInputError(
                f"{path.parent}: images of different sizes: {images[0].name} is "
                f"{first[0]}x{first[1]} but {path.name} is {size[0]}x{size[1]}; "
                "all frames of one sequence must have the same size")
    return first


def _open_video(path: Path):
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise PoseInputError(f"{path}: not a readable video file (MP4, MOV, WebM): {err}") from err
    if not container.streams.video:
        container.close()
        raise PoseInputError(f"{path}: the file has no video stream")
    return container


def _probe_video(path: Path) -> tuple[tuple[int, int], int | None]:
    with _open_video(path) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        count = stream.frames or None
    if size[0] <= 0 or size[1] <= 0:
        raise PoseInputError(f"{path}: the video stream has no frame size")
    return size, count


def _video_frames(path: Path) -> Iterator[Frame]:
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = 0
        try:
            for frame in container.decode(stream):
                yield Frame(count, f"frame{count}", frame.to_ndarray(format="rgb24"))
                count += 1
        except av.error.FFmpegError as err:
            raise PoseInputError(f"{path}: decoding failed after {count} frames: {err}") from err


def _image_frames(images: tuple[Path, ...]) -> Iterator[Frame]:
    for i, path in enumerate(images):
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as err:
            raise PoseInputError(f"{path}: not a readable image ({err})") from err
        yield Frame(i, path.name, rgb)


def open_source(path: str | Path) -> FrameSource:
    """Check ``path`` (a video file or a folder of same-size images) and describe its frames."""
    path = Path(path)
    if path.is_dir():
        images = list_images(path)
        return FrameSource(path, "images", common_size(images), len(images), tuple(images))
    if not path.exists():
        raise PoseInputError(f"{path}: no such file or folder")
    size, count = _probe_video(path)
    return FrameSource(path, "video", size, count)


def video_fps(source: FrameSource) -> float | None:
    """The frame rate of a video source (None for image folders or when the file does not say)."""
    if source.kind != "video":
        return None
    with _open_video(source.path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def video_seconds(source: FrameSource) -> float | None:
    """A video's duration from its header (None for image folders or when it does not say)."""
    if source.kind != "video":
        return None
    with _open_video(source.path) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / av.time_base if container.duration else None
