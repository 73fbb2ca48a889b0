"""Frames out: uint8 conversion, PNG folders, GIF, MP4, side-by-side panels, the submission CSV."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posecast.io.video import (side_by_side, to_uint8, write_gif, write_mp4, write_png_folder,
                                       write_submission)
from posecast_testing import leftover_temp_files


def _video(T: int, H: int = 6, W: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.rand(T, 3, H, W, generator=torch.Generator().manual_seed(seed))


def test_to_uint8_rounds_and_clamps() -> None:
    x = torch.tensor([0.0, 0.5, 1.0, 1.5, -0.2, 100.4 / 255, 100.6 / 255]).reshape(1, 1, 1, 7).expand(1, 3, 1, 7)
    u = to_uint8(x)
    assert u.shape == (1, 1, 7, 3) and u.dtype == np.uint8
    assert u[0, 0, :, 0].tolist() == [0, 128, 255, 255, 0, 100, 101]
    raw = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    assert np.array_equal(to_uint8(raw), raw.permute(0, 2, 3, 1).numpy())


def test_png_folder(tmp_path: Path) -> None:
    v = _video(11)
    folder = write_png_folder(tmp_path / "pred", v)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"frame{t}.png" for t in range(11))
    for t in (0, 10):
        assert np.array_equal(np.asarray(Image.open(folder / f"frame{t}.png")), to_uint8(v)[t])


def test_submission_format(tmp_path: Path) -> None:
    preds = [_video(3, 4, 5, seed=1), _video(2, 4, 5, seed=2)]
    path = write_submission(tmp_path / "submission.csv", preds)
    lines = path.read_text().splitlines()
    assert lines[0] == "id," + ",".join(str(i) for i in range(3 * 4 * 5))
    table = np.array([[int(v) for v in line.split(",")] for line in lines[1:]])
    assert table.shape == (5, 61)
    assert table[:, 0].tolist() == [0, 1, 2, 3, 4]  # ids from 0 across sequences, frame 0 included
    frames = torch.cat(preds)
    expected = (frames * 255).round().to(torch.int64).flatten(1).numpy()  # (C, H, W) order
    assert np.array_equal(table[:, 1:], expected)
    assert table[:, 1:].min() >= 0 and table[:, 1:].max() <= 255
    assert leftover_temp_files(tmp_path) == []


def test_submission_real_size_header(tmp_path: Path) -> None:
    path = write_submission(tmp_path / "s.csv", [torch.zeros(1, 3, 32, 64)])
    header = path.read_text().splitlines()[0].split(",")
    assert header[0] == "id" and header[1] == "0" and header[-1] == "6143" and len(header) == 6145


def test_gif(tmp_path: Path) -> None:
    frames = to_uint8(_video(5, 8, 12))
    path = write_gif(tmp_path / "a.gif", frames)
    with Image.open(path) as im:
        assert im.n_frames == 5 and im.size == (12, 8)
    assert leftover_temp_files(tmp_path) == []


def test_mp4(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    frames = to_uint8(_video(6, 9, 13))  # odd sizes are padded to even ones for H.264
    path = write_mp4(tmp_path / "a.mp4", frames)
    with av.open(str(path)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (10, 14, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


def test_side_by_side() -> None:
    a, b = _video(4, 6, 10), _video(2, 6, 10, seed=3)
    panel = side_by_side(a, b, scale=2, labels=["x", "y"])
    assert panel.shape == (4, 12 + 12, 40, 3) and panel.dtype == np.uint8
    # the shorter video repeats its last frame
    assert np.array_equal(panel[3, 12:, 20:], panel[1, 12:, 20:])
    assert np.array_equal(panel[0, 12::2, :20:2], to_uint8(a)[0])
    plain = side_by_side(a, scale=1, counter=False)
    assert plain.shape == (4, 6, 10, 3) and np.array_equal(plain, to_uint8(a))
