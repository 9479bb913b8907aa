"""Moved to `ckd_ros.frames.ros_image` (the one ROS image conversion); this name stays for existing imports."""
from ckd_ros.frames.ros_image import *  # noqa: F401,F403
from ckd_ros.frames.ros_image import __all__  # noqa: F401
