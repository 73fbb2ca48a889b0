#!/usr/bin/env bash
# Install the optional pose extra (posecast.poses.estimate.MediaPipePose) into the current Python.
#
# What it does, and why:
#   1. pip install -e '.[pose]': protobuf>=4.25.3,<6 (downgrades protobuf 7.x to 5.29.x: with 7.x
#      building a Pose graph fails, FieldDescriptor.label is gone; with 6.x importing mediapipe prints
#      "'MessageFactory' object has no attribute 'GetPrototype'"), opencv-python-headless, absl-py,
#      attrs, flatbuffers. numpy is NOT touched (numpy 2.x stays).
#   2. pip install --no-deps mediapipe==0.10.21: the last release whose wheel ships its pose models
#      (pose_detection.tflite, pose_landmark_full.tflite = model_complexity 1), so nothing downloads
#      at run time. Its metadata pins numpy<2 and protobuf<5 and pulls jax, jaxlib,
#      opencv-contrib-python, sounddevice and sentencepiece; none of them is needed for
#      mp.solutions.pose, and with numpy 2.x and protobuf 4.25-6.x it gives the same landmarks
#      (measured on the three photos in shared/data/dance/fullres), so --no-deps keeps numpy 2.x.
#      `pip check` (and pip, when it reinstalls the extra) lists mediapipe's unmet pins: expected.
#   3. A check: mediapipe builds a Pose graph on a blank image, and torch, scipy and matplotlib
#      still import and compute.
# Run scripts/setup.sh first (it installs torch and the core package).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -m pip install --quiet -e ".[pose]"
"$PY" -m pip install --quiet --no-deps "mediapipe==0.10.21"
"$PY" - <<'EOF'
import numpy as np
import google.protobuf
import mediapipe as mp
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import scipy.signal
import torch

with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
    assert pose.process(np.zeros((64, 64, 3), np.uint8)).pose_landmarks is None
assert float(torch.ones(3).sum()) == 3.0
assert np.allclose(scipy.signal.savgol_filter(np.ones(9), 5, 2), 1.0)
plt.figure().savefig(__import__("io").BytesIO())
print(f"pose extra ok: mediapipe {mp.__version__}, numpy {np.__version__}, "
      f"protobuf {google.protobuf.__version__}, torch {torch.__version__}")
EOF
