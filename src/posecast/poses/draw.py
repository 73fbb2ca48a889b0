"""Label images in the style of the dataset's 64x32 pose labels (pale coloured limbs on white).

The palette was measured on the real labels shared/data/dance/train/train_label/frame{N}.png:
a skeleton was located in 293 of the 1887 frames (every 6th; MediaPipe Pose on the 64x32 frame
upscaled 16x, about 0.3 px from the skeleton found in the full-resolution photos), and for each
limb the most-inked pixel within 1 px of the points at 35/50/65 % of the limb was sampled
(n = 480-870 per long limb). A label pixel is white blended with a saturated colour c:
255 - pixel = ink * (255 - c) / 255, so the colour is the median deficit direction (its hue) and
the median peak ink (35-50 of 255). Each limb is a line about 1 px wide: across a vertical limb
the ink sum over a row is 1.7-2.1 times the peak, with 1-2 pixels above 15 of ink. Hence one
line of width 1 at the output size in the measured pale colour (drawing at the photo's size and
downscaling would leave the 1 px lines invisible). Hues: trunk, shoulders and neck-nose blue
(240); right arm 227 (upper), 215 (fore); left arm 189, 186; right leg 160 (thigh), 140 (shin);
left leg 0 (thigh, a dark red: c ~ (113, 0, 0)), 20 (shin). The hips and the face are too short
at 64x32 to sample alone: the hip row carries the thighs' hues, so each hip segment takes its
thigh's colour; the face lines are the colours at the eye pixels (hue ~275) and ear pixels
(~284); left and right measured the same there. The real labels also draw the feet
(ankle -> toes, hues ~100 right and ~40 left), which COCO-18 cannot.
Note: in profile frames the real labels colour the arm facing the camera as the right arm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import binary_dilation

from .keypoints import KP, NUM_KEYPOINTS

BACKGROUND = (255, 255, 255)
MID_HIP = NUM_KEYPOINTS  # a derived 19th point: the midpoint of the hips

# (from, to, pale RGB as drawn at 64x32), in drawing order (later limbs on top).
LIMBS: tuple[tuple[int, int, tuple[int, int, int]], ...] = (
    (KP["neck"], KP["nose"], (214, 214, 255)),
    (KP["nose"], KP["right_eye"], (210, 186, 229)),
    (KP["right_eye"], KP["right_ear"], (227, 205, 235)),
    (KP["nose"], KP["left_eye"], (210, 186, 229)),
    (KP["left_eye"], KP["left_ear"], (227, 205, 235)),
    (KP["neck"], MID_HIP, (214, 214, 255)),
    (MID_HIP, KP["right_hip"], (214, 255, 242)),
    (MID_HIP, KP["left_hip"], (236, 220, 220)),
    (KP["right_hip"], KP["right_knee"], (214, 255, 242)),
    (KP["right_knee"], KP["right_ankle"], (216, 255, 229)),
    (KP["left_hip"], KP["left_knee"], (236, 220, 220)),
    (KP["left_knee"], KP["left_ankle"], (255, 230, 218)),
    (KP["neck"], KP["right_shoulder"], (205, 205, 255)),
    (KP["neck"], KP["left_shoulder"], (205, 205, 255)),
    (KP["right_shoulder"], KP["right_elbow"], (212, 221, 255)),
    (KP["right_elbow"], KP["right_wrist"], (209, 228, 255)),
    (KP["left_shoulder"], KP["left_elbow"], (209, 248, 255)),
    (KP["left_elbow"], KP["left_wrist"], (207, 250, 255)),
)
LINE_WIDTH = 1  # pixels at the 64x32 label size


def with_mid_hip(keypoints: np.ndarray) -> np.ndarray:
    """[18, 3] -> [19, 3]: adds the hips' midpoint (confidence: the lower of the two hips)."""
    kp = np.asarray(keypoints, np.float64)
    hips = kp[[KP["right_hip"], KP["left_hip"]]]
    mid = np.array([*hips[:, :2].mean(axis=0), hips[:, 2].min()])
    return np.concatenate([kp, mid[None]], axis=0)


def draw_label(keypoints: np.ndarray, src_size: tuple[int, int], out_size: tuple[int, int] = (64, 32),
               min_conf: float = 0.3, line_width: int = LINE_WIDTH) -> np.ndarray:
    """Draw one COCO-18 pose [18, 3] (pixels of a ``src_size`` = (W, H) image) as a label image
    uint8 [H, W, 3] of ``out_size`` = (W, H): white, with each limb whose two ends have
    confidence >= ``min_conf`` drawn as a ``line_width`` line in its ``LIMBS`` colour.

    A point (x, y) of the source lands in the output pixel that contains it:
    (floor(x * W_out / W_src), floor(y * H_out / H_src)), the products first rounded to 1/1000
    pixel, so that the float noise of a similarity and its inverse (a crop, then retargeting)
    never moves a joint across a pixel edge: a pose mapped back to where it was draws the
    same pixels.
    """
    kp = with_mid_hip(keypoints)
    bad = ~np.isfinite(kp).all(axis=1)
    kp[bad] = 0.0  # a NaN or infinite joint is not drawn
    scale = np.array([out_size[0] / src_size[0], out_size[1] / src_size[1]])
    pix = np.floor(np.round(np.clip(kp[:, :2] * scale, -1e4, 1e4), 3)).astype(int)
    image = Image.new("RGB", tuple(out_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for a, b, color in LIMBS:
        if kp[a, 2] >= min_conf and kp[b, 2] >= min_conf:
            draw.line([tuple(pix[a]), tuple(pix[b])], fill=color, width=line_width)
    return np.asarray(image, dtype=np.uint8).copy()


@dataclass(frozen=True)
class LabelOverlap:
    """How well two label images agree on where the limbs are (colours ignored)."""

    precision: float  # drawn limb pixels within ``tolerance`` px of a reference limb pixel
    recall: float  # reference limb pixels within ``tolerance`` px of a drawn limb pixel
    f1: float  # their harmonic mean (0 when either is 0)


def limb_mask(label: np.ndarray, min_ink: int = 20) -> np.ndarray:
    """Limb pixels of a label uint8 [H, W, 3]: 255 - (darkest channel) >= ``min_ink``."""
    return 255 - np.asarray(label).min(axis=-1).astype(int) >= min_ink


def label_overlap(drawn: np.ndarray, reference: np.ndarray, tolerance: int = 1,
                  min_ink: int = 20) -> LabelOverlap:
    """Compare two labels [H, W, 3] of one size: tolerant precision, recall and F1 of their
    limb pixels (:func:`limb_mask`), a pixel counting as matched when the other mask has a limb
    pixel within ``tolerance`` pixels (a (2 tolerance + 1)^2 square). Colours are ignored, so
    left/right swaps (profile views) do not count as errors."""
    a, b = limb_mask(drawn, min_ink), limb_mask(reference, min_ink)
    box = np.ones((2 * tolerance + 1,) * 2, bool)
    precision = float((a & binary_dilation(b, box)).sum() / max(a.sum(), 1))
    recall = float((b & binary_dilation(a, box)).sum() / max(b.sum(), 1))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return LabelOverlap(precision, recall, f1)
