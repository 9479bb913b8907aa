#!/usr/bin/env bash
# The README's test command: set up .venv if needed, lint, check Python 3.10 syntax, run pytest on the
# Jazzy and Humble runtimes, then the robot jobs: the runtime tests and `ckd track --onnx` in robot-like
# Python 3.10 and 3.8 venvs without torch (scripts/robot_env.sh), and a real colcon build
# (scripts/ci_colcon.sh). Extra arguments go to pytest (and then only the main pytest run happens).
# CKD_SKIP_ROBOT_JOBS=1 skips the robot jobs. Exits non-zero when anything fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
export PATH="$ROOT/.venv/bin:$PATH"
T0=$SECONDS
job() { echo "== $1"; JOB_T0=$SECONDS; }
done_job() { echo "   ($1: $((SECONDS - JOB_T0)) s)"; }

job ruff
ruff check ckd_ros launch test benchmarks scripts
done_job ruff

job "Python 3.10 syntax"
if PYENV_VERSION=3.10.13 python3.10 -c 'pass' 2>/dev/null; then
  PYENV_VERSION=3.10.13 python3.10 scripts/check_py310.py ckd_ros launch test benchmarks
else
  python scripts/check_py310.py ckd_ros launch test benchmarks
fi
done_job syntax

run_pytest() {
  local distro="$1"; shift
  ( CKD_ROS_DISTRO="$distro" . scripts/ros_env.sh && python -m pytest "$@" )
}

job "pytest (ROS 2 ${CKD_ROS_DISTRO:-jazzy} runtime)"
run_pytest "${CKD_ROS_DISTRO:-jazzy}" "$@"
done_job pytest
if [ -z "${CKD_SKIP_SECOND_DISTRO:-}" ] && [ -d .venv/lib/python3.12/site-packages/isaacsim ] && [ $# -eq 0 ]; then
  job "pytest, ROS-marked tests again on the Humble runtime"
  run_pytest humble -m ros
  done_job humble
fi

# Robot jobs: what runs on Humble / JetPack 6 (Python 3.10, numpy 1.21, OpenCV 4.5) and JetPack 5
# (Python 3.8), installed only from requirements/robot.txt + ros-constraints.txt (+ pytest on its own).
# Tests that need torch (marker `torch`, torch-only modules) or rclpy (`ros`) are not theirs.
robot_job() {
  local ver="$1" venv seq
  job "robot Python $ver: runtime tests + ckd track --onnx (no torch; numpy/OpenCV of the robot)"
  local rc=0
  venv="$(bash scripts/robot_env.sh "$ver" | tail -1)" || rc=$?
  if [ "$rc" = 3 ] && [ -z "${CI:-}" ]; then echo "   skipped: no Python $ver here (CI runs it)"; return 0; fi
  [ "$rc" = 0 ] || return "$rc"
  ( unset PYTHONPATH AMENT_PREFIX_PATH LD_LIBRARY_PATH
    export PYTHONPATH="$ROOT" OMP_NUM_THREADS=1
    "$venv/bin/python" -c 'import importlib.util as u; assert u.find_spec("torch") is None, "torch in the robot venv"'
    # every robot-side module compiles with this Python (node/ too: its tests need rclpy, not here)
    "$venv/bin/python" -c 'import pathlib, sys
files = [p for d in ("frames", "tracking", "runtime", "node", "eval") for p in pathlib.Path("ckd_ros", d).rglob("*.py")]
files += list(pathlib.Path("ckd_ros").glob("*.py"))
for p in files:
    compile(p.read_text(encoding="utf-8"), str(p), "exec", dont_inherit=True)
print(f"   {len(files)} runtime modules compile on Python {sys.version.split()[0]}")'
    "$venv/bin/python" -m pytest -p no:cacheprovider -q -m "not ros and not gpu and not torch" \
      -W ignore::DeprecationWarning  # old pyparsing/packaging of the robot Pythons
    seq="$(mktemp -d /tmp/ckd_robot.XXXXXX)"
    trap 'rm -rf "$seq"' EXIT
    "$venv/bin/python" -m ckd_ros.synthetic.dataset "$seq/data" --sequences 1 --frames 20 --size 320 256 >/dev/null
    "$venv/bin/python" -m ckd_ros.cli track --onnx engines/demo_small.onnx --backend onnxruntime --quiet \
      --sequence "$seq"/data/syn*/ --out "$seq/boxes.txt"
    # the same sequence through the dev venv (numpy 2, newest OpenCV): the robot's boxes must agree
    "$ROOT/.venv/bin/python" -m ckd_ros.cli track --onnx engines/demo_small.onnx --backend onnxruntime --quiet \
      --sequence "$seq"/data/syn*/ --out "$seq/boxes_dev.txt" >/dev/null
    "$venv/bin/python" - "$seq/boxes.txt" "$seq/boxes_dev.txt" <<'PY'
import sys

import cv2
import numpy as np

robot, dev = (np.loadtxt(open(p).read().replace(",", " ").splitlines(), ndmin=2) for p in sys.argv[1:])
assert robot.shape == (20, 4) and np.isfinite(robot).all() and (robot[:, 2:] > 0).all(), robot
diff = float(np.abs(robot - dev).max())
# result files hold 4 decimals: one rounding step apart at most
assert diff <= 2e-4, f"boxes differ from the dev venv's by {diff} px"
print(f"   ckd track --onnx: {len(robot)} boxes (numpy {np.__version__}, OpenCV {cv2.__version__}); "
      f"max |robot - dev venv| = {diff:.4f} px")
PY
    "$venv/bin/python" -m ckd_ros.cli --help >/dev/null )
  done_job "robot $ver"
}
if [ -z "${CKD_SKIP_ROBOT_JOBS:-}" ] && [ $# -eq 0 ]; then
  robot_job 3.10
  robot_job 3.8
  job "colcon build (plain + --symlink-install), install tree, console scripts --help"
  ( CKD_ROS_DISTRO="${CKD_ROS_DISTRO:-jazzy}" . scripts/ros_env.sh && bash scripts/ci_colcon.sh )
  done_job colcon
fi
echo "== all passed in $((SECONDS - T0)) s"
