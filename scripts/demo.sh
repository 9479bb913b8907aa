#!/usr/bin/env bash
# `make demo`: set up .venv if needed, then run launch/demo.launch.py headless through
# launch.LaunchService (the ROS 2 runtime wheel has no `ros2 launch` verb). Arguments are launch
# arguments, e.g.  bash scripts/demo.sh duration:=10 rviz:=true scenario:=crossover
# Exit status: the demo monitor's (0 = the demo ran; with check:=true, 0 = acceptance met).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# CKD_DEMO_SKIP_SETUP=1: the caller has set up .venv already (benchmarks/demo_repeat.py)
if [ -z "${CKD_DEMO_SKIP_SETUP:-}" ]; then
  bash scripts/setup_env.sh
fi
# shellcheck disable=SC1091
. scripts/ros_env.sh
if ! .venv/bin/python -c 'import rclpy' 2>/dev/null; then
  echo "demo: rclpy is not importable: source a ROS 2 installation or let scripts/setup_env.sh install the wheel" >&2
  exit 1
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
OUT_DIR="out"
for arg in "$@"; do
  case "$arg" in
    out_dir:=*) OUT_DIR="${arg#out_dir:=}" ;;
    *:=*) ;;
    *) echo "demo: arguments are launch arguments NAME:=VALUE, got '$arg'" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR/demo_summary.json"
echo "demo: ROS 2 ${ROS_DISTRO:-?} (${RMW_IMPLEMENTATION:-default rmw}), ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-0}"
.venv/bin/python - "$@" <<'PY'
import sys

from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

from launch import LaunchService

args = [a.split(":=", 1) for a in sys.argv[1:]]
service = LaunchService()
service.include_launch_description(IncludeLaunchDescription(
    PythonLaunchDescriptionSource("launch/demo.launch.py"), launch_arguments=args))
sys.exit(service.run())
PY
if [ ! -f "$OUT_DIR/demo_summary.json" ]; then
  echo "demo: no summary written ($OUT_DIR/demo_summary.json): the demo did not complete (see the log above)" >&2
  exit 1
fi
exit "$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["exit_code"])' "$OUT_DIR/demo_summary.json")"
