"""The one way frames enter ckd_ros (architecture.md, "frames/").

Image folders (natural sort), videos, the five benchmark dataset layouts, rosbag2 files, ROS image
messages (duck-typed: no rclpy needed) and in-memory arrays all become the same thing here:
RGB frames as HxWx3 uint8 (RGB order) and thermal frames converted to 8 bit by the one thermal
conversion (`ckd_ros.frames.thermal`). `ckd track`, `ckd benchmark`, training, the demo evaluation
and the node all read through this package, so a model sees the same inputs everywhere.

Imports numpy and OpenCV only (rosbags lazily); nothing here imports torch or rclpy.
"""
