#!/usr/bin/env bash
# CI job: a real `colcon build` of this package (plain and --symlink-install) with Debian's colcon,
# and the Jazzy venv route (`python -m colcon` in a --system-site-packages venv),
# then the install tree that `ros2 run` / `ros2 launch` use, and each installed console script's --help.
# Needs ROS 2 sourced for the --help runs (scripts/ros_env.sh). Installs colcon with apt when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${CKD_COLCON_PYTHON:-$ROOT/.venv/bin/python}"  # runs the installed scripts (has rclpy via ros_env.sh)
if ! command -v colcon >/dev/null; then
  echo "ci_colcon: colcon missing; apt-get install colcon (Debian: colcon + python3-colcon-* recommends)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq colcon >/dev/null
fi
WS="$(mktemp -d /tmp/ckd_colcon.XXXXXX)"
trap 'rm -rf "$WS"' EXIT
mkdir -p "$WS/src"
# the package as a user clones it: tracked + untracked-not-ignored files, no venvs/out/caches
git -C "$ROOT" ls-files -z --cached --others --exclude-standard | (cd "$ROOT" && xargs -0 cp --parents -t "$WS/src" 2>/dev/null) \
  || true
[ -f "$WS/src/package.xml" ] || { echo "ci_colcon: copying the package failed" >&2; exit 1; }
fail=0
# The Jazzy (PEP 668) route of docs/ros.md: a venv with --system-site-packages, COLCON_IGNOREd, and
# `python -m colcon` from inside it: the installed scripts must start the venv's Python.
COLCON_PY="$(head -1 "$(command -v colcon)" | sed 's/^#!//; s/ .*//')"
"$COLCON_PY" -m venv --system-site-packages "$WS/venv" && touch "$WS/venv/COLCON_IGNORE"
(cd "$WS" && env -u PYTHONPATH "$WS/venv/bin/python" -m colcon build --symlink-install --packages-select ckd_ros \
   --event-handlers console_direct- >"$WS/colcon_venv.log" 2>&1) \
  || { tail -30 "$WS/colcon_venv.log"; echo "ci_colcon: python -m colcon build in a venv failed" >&2; exit 1; }
for exe in "$WS"/install/ckd_ros/lib/ckd_ros/*; do
  shebang="$(head -1 "$exe")"
  [ "$shebang" = "#!$WS/venv/bin/python" ] \
    || { echo "ci_colcon (venv): $(basename "$exe") starts '$shebang', not the venv's Python" >&2; fail=1; }
done
echo "-- python -m colcon build in a --system-site-packages venv: scripts start the venv's Python"
for mode in plain symlink; do
  rm -rf "$WS/build" "$WS/install" "$WS/log"
  args=(build --packages-select ckd_ros --event-handlers console_direct- )
  [ "$mode" = symlink ] && args+=(--symlink-install)
  echo "-- colcon ${args[*]}"
  (cd "$WS" && env -u PYTHONPATH colcon "${args[@]}" >"$WS/colcon_$mode.log" 2>&1) \
    || { tail -30 "$WS/colcon_$mode.log"; echo "ci_colcon: colcon build ($mode) failed" >&2; exit 1; }
  P="$WS/install/ckd_ros"
  for f in lib/ckd_ros/ckd lib/ckd_ros/ckd_tracker lib/ckd_ros/select_target lib/ckd_ros/synthetic_camera \
           share/ckd_ros/package.xml share/ckd_ros/launch/ckd_tracker.launch.py share/ckd_ros/launch/demo.launch.py \
           share/ckd_ros/config/ckd_tracker.yaml share/ckd_ros/engines/demo_small.onnx \
           share/ckd_ros/engines/demo_small.json share/ament_index/resource_index/packages/ckd_ros \
           share/ckd_ros/package.bash; do
    [ -e "$P/$f" ] || { echo "ci_colcon ($mode): missing $f in the install tree" >&2; fail=1; }
  done
  # where `import ckd_ros` comes from after sourcing the workspace: the install tree (plain), the
  # source tree (--symlink-install: edits take effect without a rebuild)
  where="$(set +u && source "$WS/install/setup.bash" && cd / && "$PY" -c \
    'import os, ckd_ros; print(os.path.realpath(os.path.dirname(ckd_ros.__file__)))')"
  if [ "$mode" = symlink ]; then want="$(realpath "$WS/src")/ckd_ros"; else want="$(realpath "$P")/lib/"; fi
  case "$where" in "$want"*) echo "   import ckd_ros: $where" ;;
    *) echo "ci_colcon ($mode): ckd_ros imported from $where, expected under $want" >&2; fail=1 ;; esac
  # what `ros2 launch ckd_ros ...` / `ros2 run` resolve through the ament index
  share="$(set +u && source "$WS/install/setup.bash" && cd / && "$PY" -c \
    'from ament_index_python.packages import get_package_share_directory as g; print(g("ckd_ros"))')"
  [ "$share" = "$P/share/ckd_ros" ] && echo "   ament index: share/ckd_ros found" \
    || { echo "ci_colcon ($mode): ament index gives '$share', not $P/share/ckd_ros" >&2; fail=1; }
  # console scripts, as `ros2 run ckd_ros <name> --help` runs them, with the ROS Python
  for exe in "$P"/lib/ckd_ros/*; do
    name="$(basename "$exe")"
    out="$( (set +u && source "$WS/install/setup.bash" && AMENT_PREFIX_PATH="$P:${AMENT_PREFIX_PATH:-}" \
             timeout 120 "$PY" "$exe" --help) 2>&1)" \
      || { echo "$out" | tail -5; echo "ci_colcon ($mode): $name --help failed" >&2; fail=1; continue; }
    echo "$out" | grep -q "usage: $name" || { echo "ci_colcon ($mode): $name --help printed no usage" >&2; fail=1; }
    echo "   $name --help: ok"
  done
done
[ "$fail" = 0 ] && echo "ci_colcon: ok (venv route, plain, symlink-install)"
exit "$fail"
