"""The demo application: synthetic RGB-T camera node, demo monitor and scoring, demo-model release and
evaluation. It sits on top of the house (architecture.md) and may import every other subpackage; the
data generator it draws from is `ckd_ros.synthetic` (numpy/OpenCV only, no ROS, no model).
"""
