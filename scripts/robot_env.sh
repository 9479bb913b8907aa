#!/usr/bin/env bash
# Create/refresh .venv-py310 or .venv-py38: a stand-in for a robot's system Python (Humble/JetPack 6:
# 3.10 with numpy 1.21 + OpenCV 4.5; JetPack 5: 3.8), for the CI jobs in scripts/test.sh.
#   bash scripts/robot_env.sh 3.10|3.8      (prints the venv's path on the last line)
# Installs, in this order: requirements/ci/apt-*.txt (what apt/rosdep would give), then exactly the
# robot step of the docs (requirements/robot.txt -c requirements/ros-constraints.txt), then pytest on
# its own (requirements/ci/pytest.txt; a robot keeps apt's). Never torch. Idempotent via a stamp.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
  3.10) PYENV_V=3.10.13 APT=apt-jammy ;;
  3.8) PYENV_V=3.8.18 APT=apt-focal ;;
  *) echo "usage: robot_env.sh 3.10|3.8" >&2; exit 2 ;;
esac
VENV="$ROOT/.venv-py${1/./}"
REQ="$ROOT/requirements"
STAMP="$(cat "$REQ/ci/$APT.txt" "$REQ/robot.txt" "$REQ/ros-constraints.txt" "$REQ/ci/pytest.txt" \
  "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
if [ -f "$VENV/.ckd_stamp" ] && [ "$(cat "$VENV/.ckd_stamp")" = "$STAMP" ]; then
  echo "$VENV"; exit 0
fi
PY="${CKD_PYTHON_ROBOT:-python$1}"
if ! PYENV_VERSION=$PYENV_V "$PY" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$1'.split('.')))" \
    2>/dev/null; then
  echo "robot_env: Python $1 not found (pyenv install $PYENV_V, or set CKD_PYTHON_ROBOT)" >&2; exit 3
fi
echo "robot_env: creating $VENV with Python $1" >&2
rm -rf "$VENV"
PYENV_VERSION=$PYENV_V "$PY" -m venv "$VENV"
# `python -m pip` (some Pythons' venvs have no bin/pip), run outside the repo: its setup.cfg would
# otherwise move the venv's scripts to lib/ckd_ros (distutils config).
pip_() { (cd "$VENV" && "$VENV/bin/python" -m pip "$@"); }
pip_ install --quiet --only-binary=:all: -r "$REQ/ci/$APT.txt" >&2
pip_ install --quiet --only-binary=:all: -r "$REQ/robot.txt" -c "$REQ/ros-constraints.txt" >&2
pip_ install --quiet --only-binary=:all: -r "$REQ/ci/pytest.txt" >&2
# The promise of robot.txt + constraints: no torch, no numpy 2, apt's OpenCV kept, setuptools < 80.
"$VENV/bin/python" - <<'PY' >&2
import importlib.metadata as md
import importlib.util
import sys

import cv2
import numpy

have = {d.metadata["Name"].lower() for d in md.distributions()}
bad = [n for n in ("torch", "opencv-python", "opencv-contrib-python") if n in have]
assert not bad, f"robot.txt pulled {bad}"
assert int(numpy.__version__.split(".")[0]) < 2, numpy.__version__
assert cv2.__version__.startswith("4.5."), cv2.__version__
assert int(md.version("setuptools").split(".")[0]) < 80, md.version("setuptools")
assert importlib.util.find_spec("onnxruntime") is not None
print(f"robot_env: Python {sys.version.split()[0]}, numpy {numpy.__version__}, OpenCV {cv2.__version__}, "
      f"onnxruntime {md.version('onnxruntime')}, setuptools {md.version('setuptools')}, no torch")
PY
echo "$STAMP" > "$VENV/.ckd_stamp"
echo "$VENV"
