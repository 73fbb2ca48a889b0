"""COCO-18 keypoint files and confidence-aware temporal smoothing."""
from __future__ import annotations

import numpy as np
import pytest

from posecast.poses.keypoints import (
    KEYPOINT_NAMES, KP, PoseSequence, load_keypoints, save_keypoints, smooth_keypoints,
)


def test_joint_order_is_coco18() -> None:
    assert KEYPOINT_NAMES[:2] == ("nose", "neck")
    names = ("right_wrist", "left_wrist", "right_ankle", "left_ankle", "left_ear")
    assert [KP[n] for n in names] == [4, 7, 10, 13, 17]
    assert len(KEYPOINT_NAMES) == 18


def test_save_load_round_trip(tmp_path) -> None:
    kp = np.random.default_rng(0).uniform(0, 100, (3, 18, 3)).astype(np.float32)
    seq = PoseSequence(kp, (1024, 512), [0, 2, 5], ["a.png", "b.png", "c.png"], missing=[1, 3, 4])
    back = load_keypoints(save_keypoints(tmp_path / "sub" / "keypoints.npz", seq))
    assert np.array_equal(back.keypoints, kp) and back.keypoints.dtype == np.float32
    assert back.image_size == (1024, 512)
    assert back.frame_indices.tolist() == [0, 2, 5]
    assert back.frame_names == ["a.png", "b.png", "c.png"]
    assert back.missing == [1, 3, 4]


def test_sequence_rejects_a_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\[T, 18, 3\]"):
        PoseSequence(np.zeros((2, 17, 3)), (64, 32), [0, 1], ["a", "b"])


def test_constant_sequence_is_unchanged() -> None:
    kp = np.tile(np.arange(54, dtype=np.float32).reshape(1, 18, 3) / 54, (20, 1, 1))
    kp[..., 2] = 0.9
    assert np.array_equal(smooth_keypoints(kp), kp)


def test_linear_motion_is_kept() -> None:
    t = np.arange(15, dtype=np.float32)
    kp = np.zeros((15, 18, 3), np.float32)
    kp[..., 0] = 3 * t[:, None] + 10
    kp[..., 1] = -2 * t[:, None] + 100
    kp[..., 2] = 1.0
    assert np.allclose(smooth_keypoints(kp), kp, atol=1e-4)


def test_noise_variance_is_reduced() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 2.0, (200, 18, 2))
    kp = np.concatenate([100 + noise, np.ones((200, 18, 1))], axis=2).astype(np.float32)
    out = smooth_keypoints(kp)
    ratio = (out[..., :2] - 100).var() / (kp[..., :2] - 100).var()
    # a 7-tap quadratic Savitzky-Golay filter passes 0.333 of white noise's variance
    assert ratio == pytest.approx(0.333, abs=0.02)


def test_low_confidence_outlier_is_not_smeared() -> None:
    kp = np.zeros((11, 18, 3), np.float32)
    kp[..., 0] = np.arange(11, dtype=np.float32)[:, None] * 2  # linear motion: kept exactly
    kp[..., 2] = 1.0
    bad = kp.copy()
    bad[5, 3, :] = (500.0, -400.0, 0.05)  # a wild, low-confidence right elbow
    out = smooth_keypoints(bad)
    assert np.allclose(out[:, 3, :2][np.arange(11) != 5], kp[:, 3, :2][np.arange(11) != 5], atol=1e-4)
    assert out[5, 3].tolist() == [500.0, -400.0, pytest.approx(0.05)]  # kept as it was, conf too


def test_short_sequences_pass_through() -> None:
    kp = np.random.default_rng(1).uniform(0, 9, (2, 18, 3)).astype(np.float32)
    assert np.array_equal(smooth_keypoints(kp), kp)  # 2 frames: no window fits a quadratic
    five = np.random.default_rng(2).uniform(0, 9, (5, 18, 3)).astype(np.float32)
    five[..., 2] = 1
    assert smooth_keypoints(five).shape == (5, 18, 3)  # window shrinks to 5
