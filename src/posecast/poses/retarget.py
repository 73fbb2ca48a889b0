"""Global pose normalisation (Everybody Dance Now, Chan et al. 2019, section 3.3), simplified.

The driving skeleton is scaled so that its body height matches the target person's, about its
first frame's anchor, and translated so that this anchor lands on the target's anchor. One
scale and one offset for the whole sequence: the dance's own motion (steps, jumps, crouches)
is kept, only resized. The paper's per-depth scale (interpolated between the closest and
farthest ankle positions) is not modelled: both people are taken to stay at about one depth.

* body height of a pose: the lowest confident ankle's y minus the highest confident head
  joint's y (nose, eyes, ears, neck), in pixels;
* the scale compares like with like: the target's one pose with the driving's first pose (the
  one placed onto it). Comparing a single pose with a percentile of the whole driving sequence
  would shrink a person's own dance onto their own first frame by the ratio of that frame's
  height to the 90th percentile (measured on the synthetic dancer at 64x32: joints up to 0.65
  label pixel towards the feet); like with like, the same person's own keypoints come back
  exactly where they were. Only a driving first pose without a confident head or ankle falls
  back to the ``percentile`` (default 90) of the sequence's heights (:func:`body_height`);
* anchor: x = mean x of the confident hips and ankles, y = the lowest confident ankle's y
  (where the feet touch the floor).
"""
from __future__ import annotations

import numpy as np

from .keypoints import KP

HEAD = tuple(KP[n] for n in ("nose", "neck", "right_eye", "left_eye", "right_ear", "left_ear"))
ANKLES = (KP["right_ankle"], KP["left_ankle"])
HIPS = (KP["right_hip"], KP["left_hip"])


def _confident(pose: np.ndarray, joints: tuple[int, ...], min_conf: float) -> np.ndarray:
    """The (x, y) rows of ``joints`` whose confidence is at least ``min_conf``: [k, 2]."""
    rows = pose[list(joints)]
    return rows[rows[:, 2] >= min_conf, :2]


def pose_height(pose: np.ndarray, min_conf: float = 0.3) -> float | None:
    """Body height of one pose [18, 3] in pixels, or None without a confident head and ankle."""
    head, ankles = _confident(pose, HEAD, min_conf), _confident(pose, ANKLES, min_conf)
    if len(head) == 0 or len(ankles) == 0:
        return None
    return float(ankles[:, 1].max() - head[:, 1].min())


def body_height(poses: np.ndarray, percentile: float = 90.0, min_conf: float = 0.3) -> float:
    """Robust body height of poses [T, 18, 3] (or one pose [18, 3]): a percentile of the
    per-frame heights. ValueError when no frame has a confident head and ankle."""
    poses = np.asarray(poses, np.float64).reshape(-1, *np.shape(poses)[-2:])
    heights = [h for h in (pose_height(p, min_conf) for p in poses) if h is not None and h > 0]
    if not heights:
        raise ValueError("no frame has a confident head joint above a confident ankle")
    return float(np.percentile(heights, percentile))


def driving_height(poses: np.ndarray, percentile: float = 90.0, min_conf: float = 0.3) -> float:
    """The height the target's is compared with: the first pose's of [T, 18, 3], else (no
    confident head or ankle there) the ``percentile`` of the sequence's (:func:`body_height`)."""
    first = pose_height(np.asarray(poses, np.float64)[0], min_conf)
    return first if first is not None and first > 0 else body_height(poses, percentile, min_conf)


def anchor(pose: np.ndarray, min_conf: float = 0.3) -> np.ndarray:
    """The floor point of one pose [18, 3]: (mean x of hips and ankles, lowest ankle y)."""
    pose = np.asarray(pose, np.float64)
    legs, ankles = _confident(pose, HIPS + ANKLES, min_conf), _confident(pose, ANKLES, min_conf)
    if len(ankles) == 0:
        raise ValueError("the pose has no confident ankle to stand on")
    return np.array([legs[:, 0].mean(), ankles[:, 1].max()])


def retarget(driving: np.ndarray, target_first: np.ndarray, percentile: float = 90.0,
             min_conf: float = 0.3) -> np.ndarray:
    """Normalise a driving sequence [T, 18, 3] onto the target person's first pose [18, 3].

    Returns [T, 18, 3] float32: (x, y) scaled by the target's body height over the driving's
    (:func:`driving_height`) about the first driving frame's anchor, which is moved onto the
    target's anchor; confidences unchanged. A driving sequence whose first pose is the target's
    comes back unchanged (the person's own dance onto their own first frame).
    """
    drv = np.asarray(driving, np.float64)
    tgt = np.asarray(target_first, np.float64)
    scale = body_height(tgt, percentile, min_conf) / driving_height(drv, percentile, min_conf)
    out = drv.copy()
    out[..., :2] = (drv[..., :2] - anchor(drv[0], min_conf)) * scale + anchor(tgt, min_conf)
    return out.astype(np.float32)
