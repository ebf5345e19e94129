#!/usr/bin/env bash
# Create the virtual environment (if missing) and install the project with every extra.
# Used by `make`, CI and the Docker images, so all three install the same way.
#   scripts/install.sh [VENV_DIR]      (default: .venv)
set -euo pipefail

VENV_DIR="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
    echo "error: $PYTHON is $("$PYTHON" --version 2>&1); this project needs Python 3.11 (set PYTHON=...)" >&2
    exit 1
fi
if [ ! -x "$VENV_DIR/bin/python" ]; then
    echo "creating virtual environment in $VENV_DIR"
    "$PYTHON" -m venv "$VENV_DIR"
fi
PIP=("$VENV_DIR/bin/python" -m pip install --disable-pip-version-check --progress-bar off)
# torch first, pinned: the CPU wheel. Anything that asked for torch unpinned would pull a CUDA build.
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e "$ROOT[sim,learn,rl,nav,ray,bench,ros,vehicle,llm,video,dev]"
# The ROS package's Python module, in the same environment as the libraries (the pip-only runner starts
# its nodes as `python -m mfrl.<node>`); `colcon build` in ros2_ws/ installs it the ROS way as well.
"${PIP[@]}" -e "$ROOT/ros2_ws/src/mfrl"
# MovieLens-100k for the EAR recommender ships inside RecBole's wheel; only its files are read (RecBole as a
# library needs numpy < 2), so it is installed without its dependencies.
"${PIP[@]}" --no-deps "recbole==1.2.1"
# piq's weight-free image metrics (kfgan): its metadata asks for torchvision, which would replace the CPU torch
# with a CUDA build, and the metrics kfgan uses do not need it (kfgan.metrics loads them without it).
"${PIP[@]}" --no-deps "piq==0.8.0"
echo "installed into $VENV_DIR"
