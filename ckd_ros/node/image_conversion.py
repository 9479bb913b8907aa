"""Former home of the ROS image conversion, kept as a name only: everything lives in
`ckd_ros.frames.ros_image` (the one way frames enter). Import from there."""
from __future__ import annotations

from ckd_ros.frames.ros_image import array_to_image_msg, decode_rgb, decode_thermal, make_converter  # noqa: F401
