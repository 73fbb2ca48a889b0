"""The estimator protocol, MediaPipe's landmark mapping, and the missing-extra error."""
from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest

from posecast.poses import estimate as estimate_mod
from posecast.poses.errors import MissingExtraError, PoseError
from posecast.poses.quiet import quiet_native_logs
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


class FakeGraph:
    """Stands in for mp.solutions.pose.Pose: finds a person only where ``finds`` says."""

    made: list["FakeGraph"] = []

    def __init__(self, static_image_mode: bool, **options) -> None:
        self.static, self.calls, self.closed = static_image_mode, 0, False
        FakeGraph.made.append(self)

    def process(self, image: np.ndarray):
        self.calls += 1
        lost = int(image[0, 0, 0]) == 1  # the tracker loses frames whose red level is 1
        found = self.static or not lost
        point = types.SimpleNamespace(x=0.5, y=0.25, visibility=0.9 if self.static else 0.8)
        landmarks = types.SimpleNamespace(landmark=[point] * 33) if found else None
        return types.SimpleNamespace(pose_landmarks=landmarks)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_mediapipe(monkeypatch):
    FakeGraph.made = []
    module = types.SimpleNamespace(solutions=types.SimpleNamespace(pose=types.SimpleNamespace(Pose=FakeGraph)))
    monkeypatch.setattr(estimate_mod, "import_mediapipe", lambda: module)
    return FakeGraph.made


def test_tracking_falls_back_to_per_frame_detection_where_it_loses_the_person(fake_mediapipe) -> None:
    frames = [np.full((8, 16, 3), level, np.uint8) for level in (0, 0, 1, 0)]
    with MediaPipePose() as estimate:
        poses = [estimate(f) for f in frames]
    tracker, detector = fake_mediapipe
    assert (tracker.static, detector.static) == (False, True)  # the detector made on first need
    assert [p[0, 2] for p in poses] == pytest.approx([0.8, 0.8, 0.9, 0.8])  # frame 2: the detector's
    assert poses[2][0, :2].tolist() == [8.0, 2.0] and estimate.redetected == 1
    assert (tracker.calls, detector.calls) == (4, 1) and tracker.closed and detector.closed


def test_without_fallback_a_lost_frame_has_no_pose(fake_mediapipe) -> None:
    with MediaPipePose(fallback=False) as estimate:
        assert estimate(np.full((8, 16, 3), 1, np.uint8)) is None
    assert len(fake_mediapipe) == 1 and estimate.redetected == 0
    with MediaPipePose(static_image_mode=True) as estimate:  # photos: one detector, nothing to fall back to
        assert estimate(np.full((8, 16, 3), 1, np.uint8)) is not None
    assert len(fake_mediapipe) == 2


def test_native_log_lines_are_dropped_and_other_output_kept(capfd) -> None:
    with quiet_native_logs():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                    b"W0000 00:00:1796222247.449695   10717 inference_feedback_manager.cc:114] Feedback\n"
                    b"a real problem\n")
        print("progress", file=sys.stderr)  # Python's stderr is not captured by the block
        with quiet_native_logs():  # re-entrant
            os.write(2, b"I0000 00:00:17.5 12 gl_context.cc:357] GL version\n")
    err = capfd.readouterr().err
    assert "a real problem" in err and "progress" in err
    assert "XNNPACK" not in err and "inference_feedback" not in err and "gl_context" not in err
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # descriptor 2 is back
