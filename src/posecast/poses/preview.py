"""Previews to check the poses by eye: a thick skeleton over every frame (an MP4), a contact
sheet of a few of them (a PNG), and a plot of the keypoints' speed before and after smoothing.

The labels themselves are 1-pixel pale lines at the model's size, which nobody can judge; the
preview draws the same limbs in the same hues, saturated and a few pixels wide, over the crop
that the model is given, at ``PREVIEW_HEIGHT`` pixels.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from .draw import LIMBS, with_mid_hip
from .framing import CropBox, crop_resize, keypoints_into
from .keypoints import keypoint_speed

PREVIEW_HEIGHT = 256  # pixels of the preview frames (the crop, resized)
SHEET_TILES, SHEET_COLUMNS, TILE_HEIGHT = 12, 4, 160
OVERLAY_FILE, SHEET_FILE, JITTER_FILE = "overlay.mp4", "contact_sheet.png", "jitter.png"


def vivid(pale: tuple[int, int, int]) -> tuple[int, int, int]:
    """The saturated colour of a pale palette colour: its deficit from white stretched to 255
    (the palette is white blended with a saturated colour, see posecast.poses.draw)."""
    deficit = 255 - np.asarray(pale, np.float64)
    return tuple(int(v) for v in np.rint(255 - deficit * 255 / max(deficit.max(), 1.0)))


def preview_size(aspect: float, height: int = PREVIEW_HEIGHT) -> tuple[int, int]:
    """(W, H) of a preview frame of ``aspect``, both even (H.264 in yuv420p needs it)."""
    return max(2, 2 * round(height * aspect / 2)), max(2, 2 * round(height / 2))


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, min_conf: float = 0.3,
                  width: int | None = None) -> np.ndarray:
    """A copy of RGB uint8 [H, W, 3] with the pose [18, 3] (in its pixels) drawn as thick limbs
    in the labels' hues, a dot on every joint; ``width`` defaults to 1/64 of the height."""
    width = width or max(2, round(image.shape[0] / 64))
    kp = with_mid_hip(keypoints)
    ok = (kp[:, 2] >= min_conf) & np.isfinite(kp[:, :2]).all(axis=1)
    xy = np.where(ok[:, None], kp[:, :2], 0.0) - 0.5  # a point's pixel: Pillow draws at centres
    im = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    draw = ImageDraw.Draw(im)
    r = width * 0.8
    for a, b, color in LIMBS:
        if ok[a] and ok[b]:
            draw.line([tuple(xy[a]), tuple(xy[b])], fill=vivid(color), width=width, joint="curve")
    for x, y in xy[ok]:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255), outline=(40, 40, 40))
    return np.asarray(im, dtype=np.uint8).copy()


def preview_frame(image: np.ndarray, keypoints: np.ndarray, box: CropBox, size: tuple[int, int]) -> np.ndarray:
    """The ``box`` crop of a source frame at ``size`` = (W, H), with the skeleton of its pose
    [18, 3] (source pixels) drawn on it."""
    return draw_skeleton(crop_resize(image, box, size), keypoints_into(keypoints, box, size))


def sheet_positions(count: int, tiles: int = SHEET_TILES) -> list[int]:
    """Up to ``tiles`` positions spread evenly over 0..count-1, first and last included."""
    return sorted({int(round(v)) for v in np.linspace(0, count - 1, min(tiles, count))}) if count else []


def contact_sheet(tiles: list[tuple[str, np.ndarray]], columns: int = SHEET_COLUMNS,
                  height: int = TILE_HEIGHT) -> Image.Image:
    """Captioned tiles (RGB uint8 [H, W, 3], each resized to ``height``) in a grid."""
    aspect = tiles[0][1].shape[1] / tiles[0][1].shape[0]
    tw, caption = round(height * aspect), 16
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * tw, rows * (height + caption)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for n, (text, tile) in enumerate(tiles):
        x, y = (n % columns) * tw, (n // columns) * (height + caption)
        sheet.paste(Image.fromarray(tile).resize((tw, height), Image.LANCZOS), (x, y + caption))
        draw.text((x + 4, y + 2), text, fill=(235, 235, 235))
    return sheet


class OverlayWriter:
    """Streams preview frames into ``folder``/overlay.mp4 and keeps the few that the contact
    sheet shows (``folder``/contact_sheet.png, written by :meth:`close`); nothing else is held
    in memory. ``count`` is the number of frames that will be added, in order."""

    def __init__(self, folder: Path, size: tuple[int, int], fps: float, count: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.size, self.added = folder, size, 0
        self._wanted = set(sheet_positions(count))
        self._tiles: list[tuple[str, np.ndarray]] = []
        self._container = av.open(str(folder / OVERLAY_FILE), mode="w")
        self._stream = self._container.add_stream("libx264", rate=max(1, round(fps)))
        self._stream.width, self._stream.height, self._stream.pix_fmt = size[0], size[1], "yuv420p"

    def add(self, caption: str, image: np.ndarray, keypoints: np.ndarray, box: CropBox) -> None:
        """One source frame and its pose (source pixels): drawn, encoded, maybe kept as a tile."""
        frame = preview_frame(image, keypoints, box, self.size)
        packet = self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))
        self._container.mux(packet)
        if self.added in self._wanted:
            self._tiles.append((caption, frame))
        self.added += 1

    def close(self) -> None:
        """Finish the MP4 and write the contact sheet."""
        self._container.mux(self._stream.encode())
        self._container.close()
        if self._tiles:
            contact_sheet(self._tiles).save(self.folder / SHEET_FILE)

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the caller's output folder is being removed: just release the file
            self._container.close()


def plot_jitter(raw: np.ndarray, smoothed: np.ndarray, frame_indices: np.ndarray, path: Path,
                unit: str = "label pixels", window: int = 0) -> Path:
    """Keypoint speed per frame (:func:`keypoint_speed`) before and after smoothing, as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    x = np.asarray(frame_indices)[1:]
    fig = Figure(figsize=(9, 3.2), dpi=100)
    ax = fig.add_subplot()
    ax.plot(x, keypoint_speed(raw, frame_indices), lw=0.8, color="tab:red", label="raw")
    what = f"smoothed (Savitzky-Golay, {window} frames)" if window else "smoothed (off)"
    ax.plot(x, keypoint_speed(smoothed, frame_indices), lw=1.2, color="tab:blue", label=what)
    ax.set(xlabel="source frame", ylabel=f"speed ({unit} / frame)",
           title="keypoint speed: mean over the confident joints; jitter shows as spikes")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path
