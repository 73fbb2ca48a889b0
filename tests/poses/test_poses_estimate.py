"""The estimator protocol, MediaPipe's landmark mapping, and the missing-extra error."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from posecast.poses.errors import MissingExtraError, PoseError
from posecast.poses.estimate import MediaPipePose, PoseEstimator, import_mediapipe, landmarks_to_coco
from posecast.poses.keypoints import KP


def test_missing_mediapipe_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.raises(MissingExtraError) as err:
        MediaPipePose()
    message = str(err.value)
    assert "pip install -e '.[pose]'" in message
    assert "bash scripts/install_pose_extra.sh" in message
    assert "pip install --no-deps mediapipe==0.10.21" in message
    assert isinstance(err.value, ImportError) and isinstance(err.value, PoseError)
    with pytest.raises(MissingExtraError):
        import_mediapipe()


def test_landmarks_map_to_coco18_in_pixels() -> None:
    lm = np.zeros((33, 3))
    lm[:, 0] = np.arange(33) / 100  # x encodes the MediaPipe index
    lm[:, 1] = 0.5
    lm[:, 2] = 0.9
    lm[11, 2], lm[12, 2], lm[28, 2] = 0.6, 0.8, 1.3  # shoulders; an out-of-range visibility
    kp = landmarks_to_coco(lm, width=1000, height=200)
    assert kp.shape == (18, 3) and kp.dtype == np.float32
    src = np.rint(kp[:, 0] / 10).astype(int).tolist()
    assert src[KP["nose"]] == 0 and src[KP["right_shoulder"]] == 12 and src[KP["left_wrist"]] == 15
    assert src[KP["right_ankle"]] == 28 and src[KP["left_ear"]] == 7 and src[KP["right_eye"]] == 5
    assert kp[KP["neck"]].tolist() == pytest.approx([115.0, 100.0, 0.6])  # shoulders' midpoint, min
    assert kp[KP["right_ankle"], 2] == 1.0 and np.all(kp[:, 1] == 100.0)


def test_a_plain_function_is_an_estimator() -> None:
    def fake(image: np.ndarray) -> np.ndarray | None:
        return None

    assert isinstance(fake, PoseEstimator)
