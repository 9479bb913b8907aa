"""Everything rclpy: the `ckd_tracker` lifecycle node and the `select_target` tool.

Modules with one job each: tracker_node (wiring, lifecycle, services, parameters), input_sync
(subscriptions + ApproximateTimeSynchronizer), worker (latest-wins inference thread), latest_slot,
frame_cache (init by stamp), image_conversion (cv_bridge or numpy), qos, params, diagnostics,
overlay, target (set_target requests), detections (vision_msgs output), select_target.
Importing this package imports no ROS module; the submodules that need rclpy import it themselves.
"""


def handle_help(prog: str, description: str, args=None) -> None:
    """`<prog> -h/--help` for a node executable (`ros2 run ckd_ros <prog> --help`): print and exit 0.

    `args` is what the executable's `main(args)` passes to `rclpy.init` (None: sys.argv). ROS arguments
    (`--ros-args ...`) and anything else are left to rclpy; importing rclpy happens only here.
    """
    import argparse
    import sys

    from rclpy.utilities import remove_ros_args

    argv = sys.argv if args is None else list(args)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.parse_known_args(remove_ros_args(argv)[1:])
