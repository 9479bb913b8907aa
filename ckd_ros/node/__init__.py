"""Everything rclpy: the `ckd_tracker` lifecycle node and the `select_target` tool.

Modules with one job each: tracker_node (wiring, lifecycle, services, parameters), input_sync
(subscriptions + time-sized synchroniser), worker (latest-wins inference thread, tracker commands),
latest_slot, frame_cache (init by stamp, pins), qos, params (the one parameter table), diagnostics,
overlay, target (set_target requests), detections (vision_msgs output), select_target.
image_conversion is only an old import path of ckd_ros.frames.ros_image.
Importing this package imports no ROS module; the submodules that need rclpy import it themselves.
"""
