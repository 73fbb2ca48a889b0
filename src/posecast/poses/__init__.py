"""Poses for "your own dancer": COCO-18 keypoints, pose estimation (optional ``pose`` extra),
label drawing in the dataset's style, global pose normalisation (retargeting) and extraction
from a video or an image folder.
"""
from .errors import MissingExtraError, PoseError, PoseInputError
from .keypoints import (
    KEYPOINT_NAMES, NUM_KEYPOINTS, PoseSequence, load_keypoints, save_keypoints, smooth_keypoints,
)

__all__ = [
    "KEYPOINT_NAMES", "NUM_KEYPOINTS", "MissingExtraError", "PoseError", "PoseInputError",
    "PoseSequence", "load_keypoints", "save_keypoints", "smooth_keypoints",
]
