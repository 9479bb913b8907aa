"""Everything rclpy: the `ckd_tracker` lifecycle node and the `select_target` tool.

Modules with one job each: tracker_node (wiring, lifecycle, services, parameters), input_sync
(subscriptions + ApproximateTimeSynchronizer), worker (latest-wins inference thread), latest_slot,
frame_cache (init by stamp), image_conversion (cv_bridge or numpy), qos, params, diagnostics,
overlay, target (set_target requests), detections (vision_msgs output), select_target.
Importing this package imports no ROS module; the submodules that need rclpy import it themselves.
"""
