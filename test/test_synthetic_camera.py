"""The synthetic_camera node through real rclpy: encodings, frame ids, stamps, ground truth, rig offset."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from ckd_ros.synthetic import SyntheticScene
from ckd_ros.synthetic.rig import rig_homography, thermal_view

pytestmark = pytest.mark.ros


def _domain() -> int:
    return int(os.environ.get("CKD_TEST_DOMAIN_ID") or 1 + (os.getpid() + 37) % 100)


@pytest.mark.parametrize("cache_frames", [0, 5])
def test_camera_publishes_images_and_ground_truth(cache_frames):
    """Live rendering and the pre-rendered back-and-forth playback publish the same scene frames."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from ckd_ros.demo.camera import SyntheticCamera
    from ckd_ros.frames.ros_image import numpy_image_to_array
    from ckd_ros.node.detections import detection_box

    ctx = Context()
    rclpy.init(context=ctx, domain_id=_domain())
    try:
        params = [Parameter("seed", value=4), Parameter("width", value=160), Parameter("height", value=128),
                  Parameter("scenario", value="mixed"), Parameter("period", value=50),
                  Parameter("rate_hz", value=50.0), Parameter("num_frames", value=12),
                  Parameter("thermal.offset", value=[5.0, -3.0]), Parameter("cache_frames", value=cache_frames)]
        cam = SyntheticCamera(context=ctx, parameter_overrides=params)
        probe = Node("probe", context=ctx)
        got = {"rgb": [], "tir": [], "gt": []}
        probe.create_subscription(Image, "rgb/image", got["rgb"].append, 20)
        probe.create_subscription(Image, "thermal/image", got["tir"].append, 20)
        probe.create_subscription(Detection2DArray, "synthetic_camera/ground_truth", got["gt"].append, 20)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(cam)
        ex.add_node(probe)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and min(len(v) for v in got.values()) < 10:
            ex.spin_once(timeout_sec=0.05)
        assert min(len(v) for v in got.values()) >= 10, {k: len(v) for k, v in got.items()}
        for _ in range(10):
            ex.spin_once(timeout_sec=0.05)
        assert len(got["rgb"]) == 12  # num_frames stops the stream
        shown = [int(m.detections[0].id) for m in got["gt"]]
        assert shown == (list(range(12)) if cache_frames == 0 else [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3])

        scene = SyntheticScene(4, (160, 128), scenario="mixed", period=50)
        h = rig_homography((5.0, -3.0))
        rgb_by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in got["rgb"]}
        tir_by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in got["tir"]}
        for gt in got["gt"][:10]:
            key = (gt.header.stamp.sec, gt.header.stamp.nanosec)
            rgb_msg, tir_msg = rgb_by_stamp[key], tir_by_stamp[key]  # same stamp on all three
            t = int(gt.detections[0].id)
            want_rgb, want_tir, want_box = scene.frame(t)
            assert rgb_msg.encoding == "rgb8" and rgb_msg.header.frame_id == "rgb_camera"
            assert tir_msg.encoding == "mono16" and tir_msg.header.frame_id == "thermal_camera"
            assert gt.header.frame_id == "rgb_camera"
            np.testing.assert_array_equal(numpy_image_to_array(rgb_msg), want_rgb)
            np.testing.assert_array_equal(numpy_image_to_array(tir_msg), thermal_view(want_tir, h))
            assert not np.array_equal(numpy_image_to_array(tir_msg), want_tir)  # the rig offset is applied
            np.testing.assert_allclose(detection_box(gt.detections[0]), want_box, atol=1e-6)
        cam.destroy_node()
        probe.destroy_node()
        ex.shutdown()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_camera_rejects_an_unknown_scenario():
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from ckd_ros.demo.camera import SyntheticCamera

    ctx = Context()
    rclpy.init(context=ctx, domain_id=_domain())
    try:
        with pytest.raises(ValueError, match="scenario 'fog' unknown"):
            SyntheticCamera(context=ctx, parameter_overrides=[Parameter("scenario", value="fog")])
    finally:
        rclpy.try_shutdown(context=ctx)
