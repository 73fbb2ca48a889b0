"""Label drawing: exact pixels of a hand-made skeleton, in the real labels' palette."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from posecast.poses.draw import LIMBS, draw_label
from posecast.poses.keypoints import KP
from posecast_testing import dance_root

WHITE = (255, 255, 255)
# A standing skeleton in a 640x320 image; at 64x32 every joint lands on pixel (x // 10, y // 10).
JOINTS = {
    "nose": (320, 40), "neck": (320, 70), "right_shoulder": (280, 70), "right_elbow": (260, 110),
    "right_wrist": (250, 150), "left_shoulder": (360, 70), "left_elbow": (380, 110),
    "left_wrist": (390, 150), "right_hip": (300, 150), "right_knee": (300, 210),
    "right_ankle": (300, 270), "left_hip": (340, 150), "left_knee": (340, 210),
    "left_ankle": (340, 270), "right_eye": (315, 35), "left_eye": (325, 35),
    "right_ear": (305, 40), "left_ear": (335, 40),
}


def skeleton() -> np.ndarray:
    kp = np.zeros((18, 3), np.float32)
    for name, (x, y) in JOINTS.items():
        kp[KP[name]] = (x + 3, y + 7, 1.0)  # inside the pixel, not on its edge
    return kp


def color(a: str, b: str) -> tuple[int, int, int]:
    return next(c for i, j, c in LIMBS if (i, j) == (KP[a], KP[b]))


def pixel(img: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in img[y, x])


def test_limb_end_pixels_have_the_limb_colour() -> None:
    img = draw_label(skeleton(), src_size=(640, 320), out_size=(64, 32))
    assert img.shape == (32, 64, 3) and img.dtype == np.uint8
    assert pixel(img, 25, 15) == color("right_elbow", "right_wrist") == (209, 228, 255)
    assert pixel(img, 39, 15) == color("left_elbow", "left_wrist") == (207, 250, 255)
    assert pixel(img, 30, 27) == color("right_knee", "right_ankle") == (216, 255, 229)
    assert pixel(img, 34, 27) == color("left_knee", "left_ankle") == (255, 230, 218)
    assert pixel(img, 32, 11) == (214, 214, 255)  # the trunk: neck -> middle of the hips
    assert pixel(img, 60, 2) == WHITE and pixel(img, 0, 31) == WHITE and pixel(img, 45, 20) == WHITE


def test_only_palette_colours_on_white() -> None:
    img = draw_label(skeleton(), (640, 320), (64, 32))
    used = {tuple(int(v) for v in p) for p in img.reshape(-1, 3)}
    assert used <= {c for _, _, c in LIMBS} | {WHITE}
    assert 60 <= sum(p != WHITE for p in map(tuple, img.reshape(-1, 3).tolist())) <= 120


def test_low_confidence_and_nan_joints_are_not_drawn() -> None:
    kp = skeleton()
    kp[KP["left_wrist"], 2] = 0.1
    kp[KP["right_ankle"], :2] = np.nan
    img = draw_label(kp, (640, 320), (64, 32), min_conf=0.3)
    assert pixel(img, 39, 15) == WHITE and pixel(img, 39, 14) == WHITE
    assert pixel(img, 38, 11) == color("left_shoulder", "left_elbow")  # the upper arm stays
    assert pixel(img, 30, 27) == WHITE and pixel(img, 30, 26) == WHITE


def test_output_size_scales_the_drawing() -> None:
    img = draw_label(skeleton(), (640, 320), (128, 64))
    assert img.shape == (64, 128, 3)
    assert pixel(img, 50, 31) == color("right_elbow", "right_wrist")  # (253, 157) * 0.2
    assert pixel(img, 49, 31) == WHITE and pixel(img, 50, 32) == WHITE


def test_palette_is_as_pale_as_the_real_labels() -> None:
    real = np.array(Image.open(dance_root() / "train" / "train_label" / "frame0.png")).astype(int)
    ink_real = 255 - real.min(-1)
    ink_palette = [255 - min(c) for _, _, c in LIMBS]
    assert real.shape == (32, 64, 3)
    assert 30 <= np.median(ink_palette) <= 55 and max(ink_palette) <= 80
    assert np.median(ink_real[ink_real > 15]) == pytest.approx(np.median(ink_palette), abs=15)


def test_float_noise_below_a_thousandth_of_a_pixel_does_not_cross_a_pixel_edge() -> None:
    kp = skeleton()
    kp[:, :2] = np.floor(kp[:, :2] / 10) * 10  # every joint exactly on a pixel edge at 64x32
    below = kp.copy()
    below[:, :2] -= 2e-4  # what a similarity and its inverse leave behind
    assert np.array_equal(draw_label(below, (640, 320), (64, 32)), draw_label(kp, (640, 320), (64, 32)))
    far = kp.copy()
    far[:, :2] -= 0.02  # a fifth of a label pixel here (x 0.1): the joints move one pixel
    assert not np.array_equal(draw_label(far, (640, 320), (64, 32)), draw_label(kp, (640, 320), (64, 32)))
