"""Frames out: side-by-side panels, GIF (Pillow), MP4 (PyAV), PNG folders, the lab's submission CSV."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .atomic import atomic_write_bytes


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float [T, 3, H, W] in [0, 1] (or uint8) -> uint8 [T, H, W, 3]."""
    if frames.dtype != torch.uint8:
        frames = (frames.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return frames.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def side_by_side(*videos: torch.Tensor, scale: int = 3, labels: list[str] | None = None,
                 counter: bool = True) -> np.ndarray:
    """Panels [T, 3, H, W] next to each other, upscaled, with titles and a frame counter.

    Returns uint8 [T, H', W', 3]. Videos shorter than the longest repeat their last frame.
    """
    T = max(v.shape[0] for v in videos)
    panels = []
    for v in videos:
        u = to_uint8(v)
        if u.shape[0] < T:
            u = np.concatenate([u, np.repeat(u[-1:], T - u.shape[0], axis=0)])
        panels.append(u)
    strip = np.concatenate(panels, axis=2)  # [T, H, W*n, 3]
    strip = strip.repeat(scale, axis=1).repeat(scale, axis=2)
    head = 12 if (labels or counter) else 0
    out = np.full((T, strip.shape[1] + head, strip.shape[2], 3), 255, np.uint8)
    out[:, head:] = strip
    if head:
        W = strip.shape[2] // len(videos)
        for t in range(T):
            im = Image.fromarray(out[t])
            d = ImageDraw.Draw(im)
            for i, name in enumerate(labels or []):
                d.text((i * W + 2, 0), name, fill=(0, 0, 0))
            if counter:
                d.text((strip.shape[2] - 40, 0), f"{t:4d}", fill=(0, 0, 0))
            out[t] = np.asarray(im)
    return out


def write_gif(path: str | Path, frames: np.ndarray, fps: int = 30) -> Path:
    """uint8 [T, H, W, 3] -> animated GIF (written atomically)."""
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(1, round(1000 / fps)), loop=0)
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))
    return Path(path)


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 30) -> Path:
    """uint8 [T, H, W, 3] -> H.264 MP4 with PyAV (sizes padded to even numbers)."""
    import av

    T, H, W, _ = frames.shape
    H2, W2 = H + H % 2, W + W % 2
    if (H2, W2) != (H, W):
        frames = np.pad(frames, ((0, 0), (0, H2 - H), (0, W2 - W), (0, 0)), constant_values=255)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    try:
        _encode_mp4(av, tmp, frames, fps, W2, H2)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a half-written temporary file behind
        raise
    os.replace(tmp, path)
    return path


def _encode_mp4(av, tmp: Path, frames: np.ndarray, fps: int, W2: int, H2: int) -> None:
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W2, H2, "yuv420p"
        stream.options = {"crf": "18"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_png_folder(folder: str | Path, frames: torch.Tensor) -> Path:
    """float [T, 3, H, W] -> folder/frame{N}.png (the lab's naming)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(to_uint8(frames)):
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="PNG")
        # atomically: a full disk never cuts short a frame an earlier prediction wrote there
        atomic_write_bytes(folder / f"frame{t}.png", lambda fh, data=buf.getvalue(): fh.write(data))
    return folder


def write_submission(path: str | Path, predictions: list[torch.Tensor]) -> Path:
    """The lab's submission.csv: header ``id,0,...,C*H*W-1``; one row per frame of every sequence
    (frame 0 included), ids from 0 across sequences; values round(pred * 255) of the (C, H, W)
    frame flattened. predictions: float [T, C, H, W] per sequence, in [0, 1]."""
    flat = torch.cat([(p.float().clamp(0, 1) * 255).round().to(torch.int64).flatten(1) for p in predictions])
    ids = torch.arange(flat.shape[0])[:, None]
    table = torch.cat([ids, flat], 1).numpy()
    buf = io.StringIO()
    buf.write("id," + ",".join(str(i) for i in range(flat.shape[1])) + "\n")
    np.savetxt(buf, table, fmt="%d", delimiter=",")
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue().encode()))
    return Path(path)
