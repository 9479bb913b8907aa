"""ckd_ros: CKD RGB-thermal single-object tracking for ROS 2."""

__version__ = "0.1.0"
