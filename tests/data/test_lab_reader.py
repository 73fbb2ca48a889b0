"""The lab folder layout reader (posecast.data.lab): order, sizes, test layout, every bad input."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posecast.data.lab import (DataError, list_frames, load_frame, load_pose_folder, load_split,
                               load_test, read_image)
from posecast.data.synth import synth_sequence
from posecast_testing import SYNTH, copy_tree, write_png, write_split


def _values(seq_frames: torch.Tensor) -> list[int]:
    return seq_frames[:, 0, 0, 0].tolist()


# -- what a good dataset reads as ------------------------------------------------------------------
def test_frames_are_ordered_by_number(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 12)
    seq = load_split(tmp_path, "train", (8, 12))
    assert _values(seq.frames) == [10 * k for k in range(12)]  # frame10 after frame9, not after frame1
    assert _values(seq.poses) == [255 - 10 * k for k in range(12)]
    assert list(list_frames(tmp_path / "train" / "train_img")) == list(range(12))
    assert seq.name == "train" and len(seq) == 12


def test_dtype_and_layout(tmp_path: Path) -> None:
    write_split(tmp_path, "val", 3)
    seq = load_split(tmp_path, "val", (8, 12))
    assert seq.frames.dtype == seq.poses.dtype == torch.uint8
    assert seq.frames.shape == seq.poses.shape == (3, 3, 8, 12)
    assert seq.frames.is_contiguous()


def test_synthetic_dataset_reads_back_exactly(synth_root: Path) -> None:
    seq = load_split(synth_root, "train")
    frames, labels = synth_sequence(SYNTH["train_len"], seed=SYNTH["seed"])
    assert torch.equal(seq.frames, torch.from_numpy(frames).permute(0, 3, 1, 2))
    assert torch.equal(seq.poses, torch.from_numpy(labels).permute(0, 3, 1, 2))


def test_resize_when_sizes_differ(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 4, size=(16, 24))
    write_png(tmp_path / "train" / "train_img" / "frame2.png", np.full((8, 12, 3), 77))  # one odd size
    seq = load_split(tmp_path, "train", (8, 12))
    assert seq.frames.shape == seq.poses.shape == (4, 3, 8, 12)
    assert _values(seq.frames) == [0, 10, 77, 30]  # flat images stay flat when resized
    big = load_split(tmp_path, "train", (32, 48))
    assert big.frames.shape == (4, 3, 32, 48)


def test_palette_grey_and_transparent_images_become_rgb(tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((8, 12), 40, np.uint8), mode="L").save(grey)
    assert read_image(grey, (8, 12)).tolist() == np.full((8, 12, 3), 40).tolist()
    rgba = tmp_path / "rgba.png"
    arr = np.zeros((8, 12, 4), np.uint8)
    arr[..., 0] = 200
    arr[:4, ..., 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(arr, mode="RGBA").save(rgba)
    out = read_image(rgba, (8, 12))
    assert out.shape == (8, 12, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [200, 0, 0] and out[-1, 0].tolist() == [255, 255, 255]
    pal = tmp_path / "pal.png"
    Image.fromarray(np.full((8, 12, 3), 90, np.uint8)).convert("P").save(pal)
    assert read_image(pal, (8, 12)).shape == (8, 12, 3)


def test_gaps_in_numbering_warn_and_keep_numeric_order(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 5)
    for sub in ("train_img", "train_label"):
        (tmp_path / "train" / sub / "frame3.png").unlink()
    with pytest.warns(UserWarning, match="train_img.*gaps"):
        seq = load_split(tmp_path, "train", (8, 12))
    assert _values(seq.frames) == [0, 10, 20, 40]


def test_other_files_are_ignored(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 3)
    (tmp_path / "train" / "train_img" / "notes.txt").write_text("hello")
    (tmp_path / "train" / "train_img" / ".DS_Store").write_bytes(b"\0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_split(tmp_path, "train", (8, 12))) == 3


def test_test_layout_with_and_without_ground_truth(synth_root: Path, tmp_path: Path) -> None:
    seqs = load_test(synth_root)
    assert [s.name for s in seqs] == ["test_0", "test_1"]
    for k, s in enumerate(seqs):
        with np.load(synth_root / "gt" / f"{k}.npz") as z:
            gt = torch.from_numpy(z["frames"]).permute(0, 3, 1, 2)
        assert s.has_gt and len(s) == SYNTH["test_len"]
        assert torch.equal(s.frames, gt)
        first = torch.from_numpy(np.array(Image.open(synth_root / f"test/test_img/{k}/frame0.png")))
        assert torch.equal(s.frames[0], first.permute(2, 0, 1))
        label5 = np.array(Image.open(synth_root / f"test/test_label/{k}/frame5.png"))
        assert torch.equal(s.poses[5], torch.from_numpy(label5).permute(2, 0, 1))
    # without gt/: the first frame only
    root = copy_tree(synth_root, tmp_path / "d")
    (root / "gt" / "1.npz").unlink()
    seqs = load_test(root)
    assert seqs[0].has_gt and not seqs[1].has_gt
    assert seqs[1].frames.shape == (1, 3, 32, 64) and len(seqs[1]) == SYNTH["test_len"]
    # smaller size: gt and images resized alike
    small = load_test(synth_root, (16, 32))
    assert small[0].frames.shape == (SYNTH["test_len"], 3, 16, 32)
    assert small[0].poses.shape == (SYNTH["test_len"], 3, 16, 32)


def test_test_sequences_sorted_numerically(tmp_path: Path) -> None:
    for k in (0, 1, 2, 10):
        write_png(tmp_path / "test" / "test_img" / str(k) / "frame0.png", np.full((8, 12, 3), k))
        for n in range(3):
            write_png(tmp_path / "test" / "test_label" / str(k) / f"frame{n}.png", np.full((8, 12, 3), n))
    seqs = load_test(tmp_path, (8, 12))
    assert [s.name for s in seqs] == ["test_0", "test_1", "test_2", "test_10"]
    assert [int(s.frames[0, 0, 0, 0]) for s in seqs] == [0, 1, 2, 10]
    assert not any(s.has_gt for s in seqs)


def test_pose_folder_and_single_frame(synth_root: Path) -> None:
    poses = load_pose_folder(synth_root / "test/test_label/0")
    assert poses.shape == (SYNTH["test_len"], 3, 32, 64) and poses.dtype == torch.uint8
    frame = load_frame(synth_root / "test/test_img/0/frame0.png")
    assert frame.shape == (3, 32, 64)
    assert load_frame(synth_root / "test/test_img/0/frame0.png", (16, 32)).shape == (3, 16, 32)


# -- bad inputs: DataError naming the file or folder ---------------------------------------------
@pytest.fixture
def good(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_split(root, "train", 6)
    write_split(root, "val", 4)
    return root


def _raises(match_path: Path, fn, *args) -> str:
    with pytest.raises(DataError) as info:
        fn(*args)
    msg = str(info.value)
    assert str(match_path) in msg, f"message does not name {match_path}: {msg}"
    return msg


def test_missing_dataset_folder(tmp_path: Path) -> None:
    _raises(tmp_path / "nowhere", load_split, tmp_path / "nowhere", "train")


def test_missing_split_folder(good: Path) -> None:
    _raises(good / "test", load_test, good)
    shutil.rmtree(good / "val")
    msg = _raises(good / "val", load_split, good, "val")
    assert "missing split folder" in msg


def test_empty_dataset_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _raises(tmp_path / "empty" / "train", load_split, tmp_path / "empty", "train")


def test_missing_img_or_label_folder(good: Path) -> None:
    shutil.rmtree(good / "train" / "train_label")
    _raises(good / "train" / "train_label", load_split, good, "train")


def test_empty_folder(good: Path) -> None:
    for p in (good / "train" / "train_img").iterdir():
        p.unlink()
    msg = _raises(good / "train" / "train_img", load_split, good, "train")
    assert "no frame" in msg


def test_frame_without_label(good: Path) -> None:
    (good / "train" / "train_label" / "frame4.png").unlink()
    msg = _raises(good / "train" / "train_img" / "frame4.png", load_split, good, "train")
    assert str(good / "train" / "train_label") in msg and "no label" in msg


def test_label_without_frame(good: Path) -> None:
    (good / "val" / "val_img" / "frame0.png").unlink()
    msg = _raises(good / "val" / "val_label" / "frame0.png", load_split, good, "val")
    assert "no frame" in msg


@pytest.mark.parametrize("content", [b"", b"not an image at all", "truncated"])
def test_unreadable_or_non_image_file(good: Path, content) -> None:
    bad = good / "train" / "train_img" / "frame3.png"
    if content == "truncated":
        content = bad.read_bytes()[:40]
    bad.write_bytes(content)
    msg = _raises(bad, load_split, good, "train")
    assert "cannot read image" in msg


def test_folder_where_an_image_should_be(good: Path) -> None:
    bad = good / "train" / "train_label" / "frame2.png"
    bad.unlink()
    bad.mkdir()
    _raises(bad, load_split, good, "train")


def test_test_layout_bad_inputs(synth_root: Path, tmp_path: Path) -> None:
    root = copy_tree(synth_root, tmp_path / "a")
    (root / "test/test_img/1/frame0.png").unlink()
    _raises(root / "test/test_img/1/frame0.png", load_test, root)

    root = copy_tree(synth_root, tmp_path / "b")
    np.savez(root / "gt" / "0.npz", frames=np.zeros((3, 32, 64, 3), np.uint8))  # wrong length
    _raises(root / "gt" / "0.npz", load_test, root)
    np.savez(root / "gt" / "0.npz", frames=np.zeros((SYNTH["test_len"], 32, 64), np.float32))  # wrong kind
    _raises(root / "gt" / "0.npz", load_test, root)
    (root / "gt" / "0.npz").write_bytes(b"garbage")
    _raises(root / "gt" / "0.npz", load_test, root)

    root = copy_tree(synth_root, tmp_path / "c")
    for p in (root / "test/test_label/0").iterdir():
        p.unlink()
    _raises(root / "test/test_label/0", load_test, root)

    empty = tmp_path / "e"
    (empty / "test" / "test_img").mkdir(parents=True)
    (empty / "test" / "test_label").mkdir(parents=True)
    _raises(empty / "test" / "test_label", load_test, empty)


def test_missing_pose_folder_or_frame(tmp_path: Path) -> None:
    _raises(tmp_path / "poses", load_pose_folder, tmp_path / "poses")
    _raises(tmp_path / "first.png", load_frame, tmp_path / "first.png")
    (tmp_path / "first.png").write_text("text")
    _raises(tmp_path / "first.png", load_frame, tmp_path / "first.png")
    (tmp_path / "afile").write_text("x")
    _raises(tmp_path / "afile", list_frames, tmp_path / "afile")
