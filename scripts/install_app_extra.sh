#!/usr/bin/env bash
# Install the optional app extra (`posecast app`, the local Gradio page) into the current Python.
#
# What it does, and why:
#   1. pip install -e '.[app]': gradio>=6,<7 and its dependencies (fastapi, starlette, uvicorn,
#      httpx, huggingface_hub, pandas, ...). numpy 2.x and protobuf 5.x are not touched; gradio 6
#      pins pillow<13, so a pillow 13 is replaced by the newest 12.x (posecast needs pillow>=10).
#   2. A check: gradio imports with analytics off and the Hub offline (as posecast.app sets them),
#      and torch, numpy, PIL and google.protobuf (the pose extra, if installed) still import.
# Nothing is downloaded at run time: the page's scripts, styles and fonts are in the gradio wheel.
# Driving the page with a video also needs the pose extra (scripts/install_pose_extra.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -m pip install --quiet -e ".[app]"
"$PY" - <<'PYEOF'
import os
os.environ.update({"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"})
import gradio, numpy, PIL, torch
try:
    import google.protobuf as pb
    proto = pb.__version__
except ImportError:
    proto = "not installed"
assert float(torch.ones(3).sum()) == 3.0
print(f"app extra ok: gradio {gradio.__version__}, numpy {numpy.__version__}, pillow {PIL.__version__}, "
      f"protobuf {proto}, torch {torch.__version__}")
PYEOF
