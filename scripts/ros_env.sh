# Source me. Puts a ROS 2 runtime on the environment when none is sourced:
# the isaacsim-ros2 wheel inside .venv (Humble or Jazzy; CKD_ROS_DISTRO picks, default jazzy).
# On a robot with /opt/ros/<distro> sourced this does nothing.
_ckd_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${ROS_DISTRO:-}" ] || [ -n "${CKD_WHEEL_ROS:-}" ]; then
  _distro="${CKD_ROS_DISTRO:-jazzy}"
  _base="$(ls -d "$_ckd_root"/.venv/lib/python3.12/site-packages/isaacsim/exts/isaacsim.ros2.core/"$_distro" 2>/dev/null | head -1)"
  if [ -n "$_base" ]; then
    export CKD_WHEEL_ROS=1
    export ROS_DISTRO="$_distro"
    export AMENT_PREFIX_PATH="$_base"
    export LD_LIBRARY_PATH="$_base/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PYTHONPATH="$_base/rclpy${PYTHONPATH:+:$PYTHONPATH}"
    export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_cyclonedds_cpp}"
  fi
fi
# Keep test/demo DDS traffic on this machine: ROS_LOCALHOST_ONLY on Humble; Jazzy deprecates it for
# ROS_AUTOMATIC_DISCOVERY_RANGE, and with both a cross-process publish took 1.8 ms instead of 0.5 ms
# p50 on Cyclone DDS (docs/ros.md, node latency), besides two rcl warnings per process.
if [ "${ROS_DISTRO:-}" = "humble" ] || [ "${ROS_DISTRO:-}" = "foxy" ] || [ "${ROS_DISTRO:-}" = "galactic" ]; then
  export ROS_LOCALHOST_ONLY="${ROS_LOCALHOST_ONLY:-1}"
else
  export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
fi
unset _ckd_root _distro _base
