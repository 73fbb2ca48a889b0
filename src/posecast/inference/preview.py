"""The alignment preview of `posecast animate --preview`: the skeletons the model will be given,
drawn thick in saturated colours over the first frame, one tile per driving frame, as one PNG.

Misalignment between the photo's person and the retargeted skeleton is the most common failure
of pose-driven animation; the model's labels are 1-pixel pale lines at 64x32, too faint to check
by eye, so the preview draws at several times the model's size. From keypoints the limbs are
drawn where the joints really are (sub-pixel, at the preview's scale); label images (the labels
route) are enlarged without smoothing, so each of their pixels shows as a block.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..poses.draw import draw_label, limb_mask

TILE_WIDTH = 512  # the preview's tiles are about this wide, whatever the model's frame size
CAPTION_HEIGHT = 24
GAP = 4


def preview_scale(size: tuple[int, int]) -> int:
    """The integer enlargement of a frame of ``size`` = (W, H) for a tile about TILE_WIDTH wide."""
    return max(1, round(TILE_WIDTH / size[0]))


def saturate(label: np.ndarray) -> np.ndarray:
    """A label's pale colours [H, W, 3] -> the same hues at full strength: a label pixel is white
    minus ink times a colour's deficit (posecast.poses.draw), so scaling each pixel's deficit
    until its largest channel is 255 keeps the hue and drops the paleness."""
    deficit = 255.0 - label.astype(np.float32)
    peak = np.maximum(deficit.max(axis=-1, keepdims=True), 1.0)
    return np.clip(255.0 - deficit * (255.0 / peak), 0, 255).astype(np.uint8)


def skeleton_layer(size: tuple[int, int], scale: int, *, keypoints: np.ndarray | None = None,
                   label: np.ndarray | None = None) -> np.ndarray:
    """A label uint8 [H*scale, W*scale, 3] for a frame of ``size`` = (W, H): drawn from
    ``keypoints`` [18, 3] (frame pixels) with lines ``scale`` / 2 thick, else ``label`` enlarged."""
    big = (size[0] * scale, size[1] * scale)
    if keypoints is not None:
        kp = np.array(keypoints, np.float64)
        kp[:, :2] = np.round(kp[:, :2], 3)  # as animate's labels are drawn (posecast.inference.animate.snap)
        return draw_label(kp, size, big, line_width=max(3, scale // 2))
    if label is None:
        raise ValueError("skeleton_layer needs keypoints or a label")
    return np.asarray(Image.fromarray(label).resize(big, Image.NEAREST), dtype=np.uint8)


def overlay(frame: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """The frame [H, W, 3] enlarged to the layer's size, with the layer's limbs painted on it in
    their saturated colours."""
    h, w = layer.shape[:2]
    base = np.asarray(Image.fromarray(frame).resize((w, h), Image.BICUBIC), dtype=np.uint8).copy()
    mask = limb_mask(layer)
    base[mask] = saturate(layer)[mask]
    return base


def contact_sheet(tiles: list[np.ndarray], captions: list[str], columns: int = 3) -> Image.Image:
    """Tiles of one size [h, w, 3] in a grid of ``columns``, each with its caption above it."""
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    cols = min(columns, len(tiles))
    sheet = Image.new("RGB", (cols * (w + GAP) + GAP, rows * (h + CAPTION_HEIGHT + GAP) + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=16)
    for i, (tile, caption) in enumerate(zip(tiles, captions)):
        x = GAP + (i % columns) * (w + GAP)
        y = GAP + (i // columns) * (h + CAPTION_HEIGHT + GAP)
        draw.text((x + 2, y + 3), caption, fill="black", font=font)
        sheet.paste(Image.fromarray(tile), (x, y + CAPTION_HEIGHT))
    return sheet


def write_preview(path: Path, first: np.ndarray, tiles: list[tuple[str, dict]],
                  size: tuple[int, int]) -> Path:
    """Write the contact sheet of ``first`` [H, W, 3] (at the model's ``size``) under each
    skeleton of ``tiles`` (caption, ``skeleton_layer`` keyword arguments) to ``path`` (PNG)."""
    scale = preview_scale(size)
    images = [overlay(first, skeleton_layer(size, scale, **kwargs)) for _, kwargs in tiles]
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(images, [caption for caption, _ in tiles]).save(path)
    return path
