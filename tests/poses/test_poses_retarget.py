"""Global pose normalisation: invariants of retarget()."""
from __future__ import annotations

import numpy as np
import pytest

from posecast.data.synth import synth_keypoints
from posecast.poses.draw import draw_label
from posecast.poses.framing import crop_box, keypoints_into
from posecast.poses.keypoints import KP
from posecast.poses.retarget import anchor, body_height, driving_height, pose_height, retarget
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


def test_a_persons_own_dance_onto_their_own_first_frame_comes_back_to_the_pixel() -> None:
    """The invariant: the same keypoints, the driving ones mapped by another crop (a similarity)
    and the target's first pose one of their frames, are drawn on exactly the same pixels."""
    xy = synth_keypoints(60, seed=3, height=96, width=192)  # the dancer moves, crouches, raises the arms
    kp = np.concatenate([xy, np.ones((*xy.shape[:2], 1), np.float32)], axis=2)
    ours = keypoints_into(kp, crop_box(kp, (192, 96), 2.0, margin=0.15), (64, 32))  # a dataset's frame
    theirs = keypoints_into(kp[:40], crop_box(kp[:40], (192, 96), 2.0, margin=0.4), (64, 32))
    moved = retarget(theirs, ours[0])
    for t in range(len(moved)):
        assert np.array_equal(draw_label(moved[t], (64, 32)), draw_label(ours[t], (64, 32))), t
    assert np.abs(moved[..., :2] - ours[:40, :, :2]).max() < 1e-3
    # the scale of a single pose against the sequence's 90th percentile misses pixels
    old = (theirs[..., :2] - anchor(theirs[0])) * body_height(ours[0]) / body_height(theirs) + anchor(ours[0])
    old = np.concatenate([old, theirs[..., 2:]], axis=-1)
    assert any(not np.array_equal(draw_label(old[t], (64, 32)), draw_label(ours[t], (64, 32))) for t in range(40))


def test_a_driving_first_pose_without_ankles_scales_by_the_sequence() -> None:
    target = skeleton()
    driving = np.repeat(target[None], 5, axis=0)
    driving[..., :2] *= 2
    driving[0, [KP["right_ankle"], KP["left_ankle"]], 2] = 0.0  # frame 0: no height to compare
    assert driving_height(driving) == pytest.approx(2 * body_height(target))
    assert driving_height(driving[1:]) == pytest.approx(2 * body_height(target))
