#!/usr/bin/env bash
# Create/refresh .venv (Python 3.12) with everything ckd_ros needs for development, tests and the demo.
# Idempotent: a second run finds the stamp and returns in well under a second.
# When no ROS 2 is sourced, the real ROS 2 runtime (Humble + Jazzy) comes from the isaacsim-ros2 wheel.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
ISAAC_ROS2="isaacsim-ros2==6.2.0.0"
STAMP_INPUT="$(cat "$ROOT/requirements/dev.txt" "$ROOT/setup.py" "$ROOT/scripts/setup_env.sh")"
STAMP="$(printf '%s' "$STAMP_INPUT" | sha256sum | cut -c1-16)"

find_python() {
  for cand in "${CKD_PYTHON:-}" python3.12; do
    [ -n "$cand" ] || continue
    if PYENV_VERSION=3.12.1 "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "setup_env: Python 3.12 not found (install it, or set CKD_PYTHON=/path/to/python3.12)" >&2
  return 1
}

if [ -f "$VENV/.ckd_stamp" ] && [ "$(cat "$VENV/.ckd_stamp")" = "$STAMP" ]; then
  # the editable install must point at this checkout (a .venv copied or linked from another clone does not)
  where="$(cd / && "$VENV/bin/python" -c 'import ckd_ros, os; print(os.path.dirname(os.path.dirname(os.path.realpath(ckd_ros.__file__))))' 2>/dev/null || true)"
  if [ "$where" = "$(realpath "$ROOT")" ]; then
    exit 0
  fi
  echo "setup_env: .venv runs ckd_ros from '${where:-nowhere}', not $ROOT: reinstalling it in editable mode"
  "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT"
  exit 0
fi

PY="$(find_python)"
echo "setup_env: creating $VENV with $PY (first run downloads ~5 GB: torch is a CUDA build on PyPI)"
[ -x "$VENV/bin/python" ] || PYENV_VERSION=3.12.1 "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --progress-bar off -r "$ROOT/requirements/dev.txt"
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT"

if [ -z "${ROS_DISTRO:-}" ]; then
  if ! "$VENV/bin/python" -m pip show --quiet isaacsim-ros2 >/dev/null 2>&1; then
    echo "setup_env: no ROS 2 sourced; installing the ROS 2 runtime wheel ($ISAAC_ROS2, ~130 MB)"
    "$VENV/bin/python" -m pip install --progress-bar off --no-deps "$ISAAC_ROS2"
  fi
fi
echo "$STAMP" > "$VENV/.ckd_stamp"
echo "setup_env: ready"
