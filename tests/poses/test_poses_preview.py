"""Previews: the thick skeleton's colours and placement, the contact sheet, keypoint speed."""
from __future__ import annotations

import numpy as np
import pytest

from posecast.poses.draw import LIMBS
from posecast.poses.keypoints import KP, jitter_summary, keypoint_speed
from posecast.poses.preview import contact_sheet, draw_skeleton, preview_size, sheet_positions, vivid
from test_poses_draw import skeleton


def test_vivid_colours_keep_the_labels_hues_at_full_strength() -> None:
    assert vivid((214, 214, 255)) == (0, 0, 255) and vivid((236, 220, 220)) == (117, 0, 0)  # the dark red of the left thigh
    for _, _, pale in LIMBS:
        strong = np.array(vivid(pale))
        assert strong.min() == 0 and np.argmax(255 - strong) == np.argmax(255 - np.array(pale))


def test_the_skeleton_is_thick_and_lies_on_the_joints() -> None:
    image = np.zeros((320, 640, 3), np.uint8)
    out = draw_skeleton(image, skeleton(), width=5)
    x, y = (skeleton()[KP["right_elbow"], :2] + skeleton()[KP["right_wrist"], :2]) / 2  # mid forearm
    across = out[int(y), int(x) - 6:int(x) + 7].max(-1) > 0
    assert 4 <= across.sum() <= 8  # about 5 px wide
    assert tuple(out[int(y), int(x)]) == vivid(next(c for a, b, c in LIMBS if (a, b) == (KP["right_elbow"], KP["right_wrist"])))
    assert out[:20].max() == 0 and image.max() == 0  # nothing above the head; the input untouched


def test_preview_sizes_are_even_and_sheets_take_first_and_last() -> None:
    assert preview_size(2.0) == (512, 256) and preview_size(16 / 9, 101) == (180, 100)
    assert sheet_positions(100) == [0, 9, 18, 27, 36, 45, 54, 63, 72, 81, 90, 99]
    assert sheet_positions(3) == [0, 1, 2] and sheet_positions(0) == []
    sheet = contact_sheet([(f"frame {i}", np.zeros((64, 128, 3), np.uint8)) for i in range(5)], columns=4, height=32)
    assert sheet.size == (4 * 64, 2 * (32 + 16))


def test_keypoint_speed_is_the_mean_step_of_the_confident_joints_and_skips_gaps() -> None:
    kp = np.repeat(skeleton()[None], 4, axis=0)
    kp[:, :, 0] += np.array([0, 3, 6, 10])[:, None]  # steps of 3, 3, 4 px
    kp[2, KP["nose"], :2] += (0, 40)  # a wrong nose ...
    kp[2, KP["nose"], 2] = 0.1  # ... with a low confidence: ignored
    assert keypoint_speed(kp) == pytest.approx([3.0, 3.0, 4.0])
    speed = keypoint_speed(kp, frame_indices=np.array([0, 1, 5, 6]))
    assert speed[0] == 3.0 and np.isnan(speed[1]) and speed[2] == 4.0
    summary = jitter_summary(kp, kp)
    assert summary["speed_raw"] == pytest.approx(10 / 3, abs=1e-3) and summary["jitter_raw"] == pytest.approx(0.5)
