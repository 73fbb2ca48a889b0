"""Tests for the synthetic dancer (posecast.data.synth)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from posecast.data.synth import (
    JOINT_NAMES,
    LIMB_COLORS,
    LIMBS,
    synth_keypoints,
    synth_sequence,
    write_synthetic_dataset,
)


def _nonwhite(labels: np.ndarray) -> np.ndarray:
    """Mask of label pixels that are not (near) white."""
    return labels.min(axis=-1) < 240


def test_body_model_is_coco18() -> None:
    assert len(JOINT_NAMES) == 18
    assert len(LIMBS) == 17
    assert len(set(LIMB_COLORS)) == 17  # every limb its own colour
    assert len({tuple(sorted(limb)) for limb in LIMBS}) == 17


@pytest.mark.parametrize("height,width", [(32, 64), (24, 40)])
def test_shapes_and_dtypes(height: int, width: int) -> None:
    frames, labels = synth_sequence(3, seed=1, height=height, width=width)
    assert frames.shape == labels.shape == (3, height, width, 3)
    assert frames.dtype == labels.dtype == np.uint8


def test_deterministic_per_seed() -> None:
    a = synth_sequence(4, seed=7)
    b = synth_sequence(4, seed=7)
    c = synth_sequence(4, seed=8)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[1], c[1])


def test_start_offset_is_a_slice_of_the_recording() -> None:
    full_f, full_l = synth_sequence(15, seed=3)
    part_f, part_l = synth_sequence(10, seed=3, start=5)
    np.testing.assert_array_equal(part_f, full_f[5:])
    np.testing.assert_array_equal(part_l, full_l[5:])


def test_motion_is_smooth() -> None:
    frames, _ = synth_sequence(80, seed=0)
    f = frames.astype(np.float32)
    near = np.abs(f[1:] - f[:-1]).mean()
    far = np.abs(f[40:] - f[:-40]).mean()
    assert near < 2.5  # a few grey levels per pixel, like 30 fps video
    assert far > 2.0 * near


def test_background_is_static() -> None:
    # Pixels of the top-left corner never hold the dancer: a fixed camera sees a fixed studio.
    frames, _ = synth_sequence(30, seed=2)
    corner = frames[:, :3, :3].astype(int)
    assert np.abs(corner - corner[0]).max() == 0
    assert frames[0].std() > 5  # textured, not flat


def test_label_is_skeleton_on_white() -> None:
    _, labels = synth_sequence(5, seed=4)
    mask = _nonwhite(labels)
    assert 0.01 < mask.mean() < 0.2  # mostly white, but a visible skeleton
    # Count the distinct hues of clearly coloured pixels: one per limb, several limbs visible.
    px = labels[mask].astype(np.float32)
    sat = px.max(axis=1) - px.min(axis=1)
    hues = np.asarray(Image.fromarray(px[sat > 40][None].astype(np.uint8)).convert("HSV"))[0, :, 0]
    assert len(np.unique(hues // 16)) >= 6


def test_label_aligned_with_frame() -> None:
    # The dancer differs from the static background where the skeleton is drawn.
    frames, labels = synth_sequence(2, seed=5, start=10)
    later, _ = synth_sequence(1, seed=5, start=10 + 200)
    mask = _nonwhite(labels[0])
    changed = np.abs(frames[0].astype(int) - later[0].astype(int)).sum(-1) > 30
    assert changed[mask].mean() > 2 * changed[~mask].mean()


def test_keypoints_match_label_geometry() -> None:
    kp = synth_keypoints(3, seed=6)
    _, labels = synth_sequence(3, seed=6)
    assert kp.shape == (3, 18, 2) and kp.dtype == np.float32
    mask = _nonwhite(labels[0])
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - kp[0, :, 0].mean()) < 3
    assert abs(ys.mean() - kp[0, :, 1].mean()) < 4


def test_person_moves() -> None:
    _, labels = synth_sequence(300, seed=0)
    cents = []
    for lab in labels[::30]:
        ys, xs = np.nonzero(_nonwhite(lab))
        cents.append((xs.mean(), ys.mean()))
    cents = np.array(cents)
    assert np.ptp(cents[:, 0]) > 3.0  # travels across the frame
    # ...and the silhouette changes shape (arms, steps, squats), not just position.
    widths = [np.ptp(np.nonzero(_nonwhite(lab))[1]) for lab in labels[::30]]
    assert np.ptp(widths) >= 3


def test_write_synthetic_dataset_layout(tmp_path) -> None:
    root = write_synthetic_dataset(tmp_path / "ds", seed=1, height=16, width=24, train_sequences=2,
                                   train_len=5, val_len=4, test_sequences=2, test_len=3)
    assert root == tmp_path / "ds"
    names = lambda d: sorted(p.name for p in (root / d).iterdir())  # noqa: E731
    assert names("train/train_img") == sorted(f"frame{n}.png" for n in range(10))
    assert names("train/train_label") == sorted(f"frame{n}.png" for n in range(10))
    assert names("val/val_img") == names("val/val_label") == sorted(f"frame{n}.png" for n in range(4))
    assert names("test/test_img") == names("test/test_label") == ["0", "1"]
    assert names("gt") == ["0.npz", "1.npz"]
    for k in range(2):
        assert names(f"test/test_img/{k}") == ["frame0.png"]
        assert names(f"test/test_label/{k}") == [f"frame{n}.png" for n in range(3)]
    img = np.asarray(Image.open(root / "train/train_img/frame7.png"))
    assert img.shape == (16, 24, 3) and img.dtype == np.uint8

    gts = []
    for k in range(2):
        with np.load(root / f"gt/{k}.npz") as z:
            assert list(z.keys()) == ["frames"]
            gt = z["frames"]
        assert gt.shape == (3, 16, 24, 3) and gt.dtype == np.uint8
        first = np.asarray(Image.open(root / f"test/test_img/{k}/frame0.png"))
        np.testing.assert_array_equal(first, gt[0])
        gts.append(gt)
    assert not np.array_equal(gts[0], gts[1])  # different pieces of the recording

    # Train sequences are distinct pieces; the files hold exactly what synth_sequence renders.
    train = np.stack([np.asarray(Image.open(root / f"train/train_img/frame{n}.png")) for n in range(10)])
    expected, _ = synth_sequence(5, seed=1, height=16, width=24)
    np.testing.assert_array_equal(train[:5], expected)
    assert not np.array_equal(train[:5], train[5:])
    val = np.stack([np.asarray(Image.open(root / f"val/val_img/frame{n}.png")) for n in range(4)])
    assert not any(np.array_equal(val[0], t) for t in train)


@pytest.mark.parametrize("kwargs,name", [
    ({"num_frames": 0}, "num_frames"),
    ({"num_frames": 2, "height": 4}, "height"),
    ({"num_frames": 2, "width": 7}, "width"),
    ({"num_frames": 2.5}, "num_frames"),
    ({"num_frames": 2, "seed": -1}, "seed"),
    ({"num_frames": 2, "start": -3}, "start"),
])
def test_synth_sequence_bad_arguments(kwargs: dict, name: str) -> None:
    num_frames = kwargs.pop("num_frames")
    with pytest.raises(ValueError, match=name):
        synth_sequence(num_frames, **kwargs)


@pytest.mark.parametrize("kwargs,name", [
    ({"train_sequences": 0}, "train_sequences"),
    ({"train_len": -1}, "train_len"),
    ({"val_len": 0}, "val_len"),
    ({"test_sequences": 0}, "test_sequences"),
    ({"test_len": True}, "test_len"),
    ({"height": 5}, "height"),
    ({"width": 2}, "width"),
])
def test_write_bad_arguments(tmp_path, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        write_synthetic_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()  # validated before anything is written
