"""Global pose normalisation: invariants of retarget()."""
from __future__ import annotations

import numpy as np
import pytest

from posecast.poses.keypoints import KP
from posecast.poses.retarget import anchor, body_height, retarget
from test_poses_draw import skeleton


def test_driving_equal_to_target_is_unchanged() -> None:
    target = skeleton()
    assert np.array_equal(retarget(target[None], target), target[None])
    still = np.repeat(target[None], 5, axis=0)
    assert np.array_equal(retarget(still, target), still)


def test_height_and_anchor_of_the_hand_made_skeleton() -> None:
    kp = skeleton()  # head top: the eyes at y 42, ankles at y 277, hips/ankles x 303-343
    assert body_height(kp) == pytest.approx(277 - 42)
    assert anchor(kp).tolist() == pytest.approx([323.0, 277.0])


def test_scaled_and_shifted_driver_comes_back_to_the_target() -> None:
    target = skeleton()
    driving = np.repeat(target[None], 4, axis=0)
    driving[..., :2] = driving[..., :2] * 2 + np.array([150.0, -90.0], np.float32)
    driving[:, :, 0] += np.arange(4, dtype=np.float32)[:, None] * 20  # walks right, 20 px a frame
    out = retarget(driving, target)
    assert np.allclose(out[0], target, atol=1e-4)
    steps = out[1:, :, 0] - out[:-1, :, 0]
    assert np.allclose(steps, 10.0, atol=1e-4)  # the motion is kept, at the target's scale
    assert np.allclose(out[..., 2], driving[..., 2])  # confidences untouched


def test_height_is_a_robust_percentile_over_the_sequence() -> None:
    target = skeleton()
    driving = np.repeat(target[None], 20, axis=0)
    driving[7, KP["right_ankle"], 1] += 500  # one frame in 20 with a wild ankle: above the 90th
    upper = [j for j in range(18) if j not in (KP["right_ankle"], KP["left_ankle"])]
    driving[9, upper, 1] += 100  # and one crouching frame, 100 px shorter: below it
    assert body_height(driving) == pytest.approx(body_height(target))
    assert np.allclose(retarget(driving, target)[0], target, atol=1e-4)


def test_a_pose_without_ankles_is_refused() -> None:
    target = skeleton()
    driving = target.copy()
    driving[[KP["right_ankle"], KP["left_ankle"]], 2] = 0.0
    with pytest.raises(ValueError, match="ankle"):
        retarget(driving[None], target)
