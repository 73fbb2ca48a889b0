#!/usr/bin/env bash
# Install posecast (and with --test, its test dependencies) into the current Python.
# torch: an installed torch is kept (a user's CUDA or ROCm build stays); with none installed,
# torch==2.13.0 is installed first, which on the project's CPU machines is the local CPU wheel.
# Set POSECAST_TORCH to another requirement (e.g. "torch==2.5.1") to choose.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet "${POSECAST_TORCH:-torch==2.13.0}"
fi
extra=""
if [[ "${1:-}" == "--test" ]]; then extra="[test]"; fi
"$PY" -m pip install --quiet -e ".${extra}"
