"""Frame sources: videos through PyAV, image folders through Pillow, and their errors."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from posecast.poses.errors import PoseError, PoseInputError
from posecast.poses.source import open_source


def write_video(path: Path, frames: int, size: tuple[int, int], codec: str = "mpeg4") -> Path:
    """A short test video: frame i is a flat grey of level 20 * i."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            rgb = np.full((size[1], size[0], 3), 20 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_images(folder: Path, names_sizes: dict[str, tuple[int, int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, size) in enumerate(names_sizes.items()):
        Image.new("RGB", size, (10 * i, 0, 0)).save(folder / name)
    return folder


@pytest.mark.parametrize("suffix,codec", [(".mp4", "mpeg4"), (".webm", "libvpx"), (".mov", "mpeg4")])
def test_video_is_read_back_with_its_frame_count_and_size(tmp_path, suffix, codec) -> None:
    source = open_source(write_video(tmp_path / f"clip{suffix}", 7, (48, 32), codec))
    assert (source.kind, source.size) == ("video", (48, 32))
    frames = list(source.frames())
    assert len(frames) == 7
    assert [f.index for f in frames] == list(range(7)) and frames[3].name == "frame3"
    assert all(f.image.shape == (32, 48, 3) and f.image.dtype == np.uint8 for f in frames)
    assert abs(float(frames[5].image.mean()) - 100) < 6  # grey level 20 * 5, after lossy coding


def test_text_file_named_mp4_is_not_a_video(tmp_path) -> None:
    fake = tmp_path / "dance.mp4"
    fake.write_text("this is not a video\n")
    with pytest.raises(PoseInputError, match=r"dance\.mp4: not a readable video file"):
        open_source(fake)


def test_missing_path(tmp_path) -> None:
    with pytest.raises(PoseInputError, match="no such file or folder"):
        open_source(tmp_path / "nothing.mp4")


def test_empty_folder(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(PoseInputError, match="the folder has no images"):
        open_source(tmp_path / "empty")


def test_mixed_sizes_name_two_files_and_their_sizes(tmp_path) -> None:
    folder = write_images(tmp_path / "imgs", {"f1.png": (64, 32), "f2.png": (64, 32), "f10.png": (80, 40)})
    with pytest.raises(PoseInputError) as err:
        open_source(folder)
    assert "f1.png is 64x32 but f10.png is 80x40" in str(err.value)
    assert isinstance(err.value, PoseError) and isinstance(err.value, ValueError)


def test_image_folder_in_natural_order(tmp_path) -> None:
    names = ["frame10.png", "frame2.png", "frame1.png", "frame0.jpg"]
    folder = write_images(tmp_path / "imgs", {n: (40, 20) for n in names})
    source = open_source(folder)
    assert (source.kind, source.size, source.count) == ("images", (40, 20), 4)
    frames = list(source.frames())
    assert [f.name for f in frames] == ["frame0.jpg", "frame1.png", "frame2.png", "frame10.png"]
    assert int(frames[3].image[0, 0, 0]) == 0  # frame10.png was written first: red 0
    assert frames[0].image.shape == (20, 40, 3)
