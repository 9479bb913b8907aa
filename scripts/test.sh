#!/usr/bin/env bash
# The README's test command: set up .venv if needed, lint, check Python 3.10 syntax, run pytest.
# Extra arguments go to pytest. Exits non-zero when anything fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
export PATH="$ROOT/.venv/bin:$PATH"

echo "== ruff"
ruff check ckd_ros launch test benchmarks scripts

echo "== Python 3.10 syntax"
if PYENV_VERSION=3.10.13 python3.10 -c 'pass' 2>/dev/null; then
  PYENV_VERSION=3.10.13 python3.10 scripts/check_py310.py ckd_ros launch test benchmarks
else
  python scripts/check_py310.py ckd_ros launch test benchmarks
fi

run_pytest() {
  local distro="$1"; shift
  ( CKD_ROS_DISTRO="$distro" . scripts/ros_env.sh && python -m pytest "$@" )
}

echo "== pytest (ROS 2 ${CKD_ROS_DISTRO:-jazzy} runtime)"
run_pytest "${CKD_ROS_DISTRO:-jazzy}" "$@"
if [ -z "${CKD_SKIP_SECOND_DISTRO:-}" ] && [ -d .venv/lib/python3.12/site-packages/isaacsim ] && [ $# -eq 0 ]; then
  echo "== pytest, ROS-marked tests again on the Humble runtime"
  run_pytest humble -m ros
fi
