"""Pose estimators: anything callable RGB uint8 [H, W, 3] -> COCO-18 [18, 3] float32 (or None).

``MediaPipePose`` needs the optional ``pose`` extra (see ``INSTALL_HINT``); everything else in
posecast.poses works without it, and tests inject their own estimators through the protocol.
"""
from __future__ import annotations

import contextlib
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import MissingExtraError
from .keypoints import NUM_KEYPOINTS
from .quiet import quiet_native_logs, silence_mediapipe_logging

INSTALL_HINT = (
    "install the optional 'pose' extra from the posecast checkout with "
    "`bash scripts/install_pose_extra.sh`, which runs `pip install -e '.[pose]'` and then "
    "`pip install --no-deps mediapipe==0.10.21` (--no-deps: mediapipe 0.10.21 pins numpy<2, "
    "but runs with numpy 2 and protobuf<6)"
)

# COCO-18 joint -> MediaPipe Pose landmark index (mp.solutions.pose.PoseLandmark); None = neck,
# which MediaPipe lacks: the midpoint of the shoulders (11, 12).
MEDIAPIPE_TO_COCO: tuple[int | None, ...] = (
    0, None,        # nose, neck
    12, 14, 16,     # right shoulder, elbow, wrist
    11, 13, 15,     # left shoulder, elbow, wrist
    24, 26, 28,     # right hip, knee, ankle
    23, 25, 27,     # left hip, knee, ankle
    5, 2, 8, 7,     # right eye, left eye, right ear, left ear
)
# model_complexity 1 (pose_landmark_full.tflite) is the model the mediapipe wheel ships;
# 0 and 2 download their models on first use, which fails offline.
MODEL_COMPLEXITY = 1


@runtime_checkable
class PoseEstimator(Protocol):
    """Finds one person: RGB uint8 [H, W, 3] -> float32 [18, 3] (x, y in pixels, confidence),
    or None when there is no person in the image."""

    def __call__(self, image: np.ndarray) -> np.ndarray | None: ...


def import_mediapipe() -> Any:
    """The ``mediapipe`` module, or :class:`MissingExtraError` naming the install command."""
    silence_mediapipe_logging()  # before the import: glog and TF Lite read their levels then
    try:
        with quiet_native_logs():
            import mediapipe
    except ImportError as err:
        raise MissingExtraError(f"pose estimation needs mediapipe, which is not importable "
                                f"({err}): {INSTALL_HINT}") from err
    return mediapipe


def landmarks_to_coco(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """MediaPipe's 33 landmarks [33, 3] (x, y normalised to [0, 1], visibility) -> COCO-18 [18, 3]
    in pixels; confidence = visibility clipped to [0, 1], the neck's = the lower shoulder's."""
    lm = np.asarray(landmarks, np.float64)
    out = np.zeros((NUM_KEYPOINTS, 3), np.float64)
    for j, src in enumerate(MEDIAPIPE_TO_COCO):
        if src is None:
            out[j, :2] = (lm[11, :2] + lm[12, :2]) / 2
            out[j, 2] = min(lm[11, 2], lm[12, 2])
        else:
            out[j] = lm[src]
    out[:, 0] *= width
    out[:, 1] *= height
    out[:, 2] = np.clip(out[:, 2], 0.0, 1.0)
    return out.astype(np.float32)


class MediaPipePose:
    """MediaPipe Pose (BlazePose, ``model_complexity=1``) as a :class:`PoseEstimator`.

    ``static_image_mode=False`` tracks the person from frame to frame (for videos: faster and
    steadier); True runs the detector on every image (for unrelated photos). While tracking,
    a frame where the tracker finds nobody (it loses the person at a cut or a fast turn) is
    given to a second, per-frame detector (``fallback``); ``redetected`` counts those frames
    that it found. MediaPipe's native log lines (TF Lite, absl) are kept off the terminal.
    """

    def __init__(self, static_image_mode: bool = False, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, fallback: bool = True) -> None:
        self._options = dict(min_detection_confidence=min_detection_confidence,
                             min_tracking_confidence=min_tracking_confidence)
        self._quiet = contextlib.ExitStack()  # held until close(): the graphs' threads log late
        self._quiet.enter_context(quiet_native_logs())
        try:
            self._pose = self._graph(static_image_mode)
        except BaseException:
            self._quiet.close()
            raise
        self._detector: Any = None
        self._fallback = fallback and not static_image_mode
        self.redetected = 0

    def _graph(self, static_image_mode: bool) -> Any:
        mp = import_mediapipe()
        try:
            return mp.solutions.pose.Pose(static_image_mode=static_image_mode,
                                          model_complexity=MODEL_COMPLEXITY, **self._options)
        except AttributeError as err:  # protobuf 6+/7 against mediapipe 0.10.21's generated code
            raise MissingExtraError(f"mediapipe could not build its pose graph ({err}); "
                                    f"protobuf must be <6: {INSTALL_HINT}") from err

    @staticmethod
    def _run(graph: Any, image: np.ndarray) -> np.ndarray | None:
        result = graph.process(image)
        if result.pose_landmarks is None:
            return None
        lm = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark])
        return landmarks_to_coco(lm, image.shape[1], image.shape[0])

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB image [H, W, 3], got {image.shape}")
        pose = self._run(self._pose, image)
        if pose is None and self._fallback:
            if self._detector is None:  # made on first need: most videos never lose the person
                self._detector = self._graph(static_image_mode=True)
            pose = self._run(self._detector, image)
            self.redetected += pose is not None
        return pose

    def close(self) -> None:
        """Release the MediaPipe graphs (then stderr is the process's own again)."""
        try:
            self._pose.close()
            if self._detector is not None:
                self._detector.close()
        finally:
            self._quiet.close()

    def __enter__(self) -> MediaPipePose:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
