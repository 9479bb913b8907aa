"""The node's geometry with real rclpy: registration from camera_info + TF (static broadcaster in the
test, and the synthetic camera's own), the target ray and marker, and the geometry diagnostics."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from test_node_support import Harness, MovingTarget, make_context, shutdown_context, wait_for

from ckd_ros.node.geometry import box_centre_pixel
from ckd_ros.tracking.camera_model import CameraModel, azimuth_elevation

pytestmark = pytest.mark.ros

K_RGB = np.array([[300.0, 0.0, 159.5], [0.0, 300.0, 127.5], [0.0, 0.0, 1.0]])
D_RGB = [-0.12, 0.03, 0.001, -0.0005, 0.0]
K_TIR = np.array([[150.0, 0.0, 79.75], [0.0, 150.0, 63.75], [0.0, 0.0, 1.0]])  # half resolution, same axes


@pytest.fixture
def ctx():
    context = make_context()
    yield context
    shutdown_context(context)


def camera_info(width, height, K, D, frame):
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[float(v) for v in D])
    info.k = K.reshape(-1).tolist()
    info.header.frame_id = frame
    return info


def static_tf(node, parent, child, xyz):
    from geometry_msgs.msg import TransformStamped
    from tf2_ros import StaticTransformBroadcaster

    tf = TransformStamped()
    tf.header.stamp = node.get_clock().now().to_msg()
    tf.header.frame_id, tf.child_frame_id = parent, child
    tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = xyz
    tf.transform.rotation.w = 1.0
    broadcaster = StaticTransformBroadcaster(node)
    broadcaster.sendTransform(tf)
    return broadcaster


def grid_error(a, b, width, height):
    q = np.stack(np.meshgrid(np.linspace(0, width - 1, 17), np.linspace(0, height - 1, 17)), -1).reshape(-1, 1, 2)
    return float(np.abs(cv2.perspectiveTransform(q, a) - cv2.perspectiveTransform(q, b)).max())


def test_camera_info_registration_target_ray_and_diagnostics(ctx):
    from geometry_msgs.msg import Vector3Stamped
    from sensor_msgs.msg import CameraInfo
    from visualization_msgs.msg import Marker

    h = Harness(ctx, overrides={"registration.mode": "camera_info", "tracking.lost_threshold": 0.0})
    try:
        rays, markers = [], []
        base = h.node.get_fully_qualified_name()
        h.client.create_subscription(Vector3Stamped, f"{base}/target_ray", lambda m: rays.append(m), 50)
        h.client.create_subscription(Marker, f"{base}/target_marker", lambda m: markers.append(m), 50)
        info_pubs = [(h.client.create_publisher(CameraInfo, topic, 5), info) for topic, info in (
            ("rgb/camera_info", camera_info(320, 256, K_RGB, D_RGB, "camera_rgb")),
            ("thermal/camera_info", camera_info(160, 128, K_TIR, [0.0] * 5, "camera_thermal")))]
        keep = static_tf(h.client, "camera_rgb", "camera_thermal", (0.1, 0.0, 0.0))
        stop = threading.Event()

        def publish_infos():
            while not stop.is_set():
                for pub, info in info_pubs:
                    pub.publish(info)
                stop.wait(0.1)

        threading.Thread(target=publish_infos, daemon=True).start()
        assert wait_for(lambda: h.node.geometry.registration() is not None, 15.0), h.node.geometry.problem
        assert wait_for(lambda: h.node._settings is not None
                        and h.node._settings.registration is h.node.geometry.registration(), 5.0)
        rgb_model = h.node.geometry.rgb
        # at infinity the baseline does not matter; the exact mapping (RGB distortion) is fitted
        from ckd_ros.tracking.registration import exact_mapping

        q = np.stack(np.meshgrid(np.linspace(0, 159, 9), np.linspace(0, 127, 9)), -1).reshape(-1, 2)
        reg = h.node._settings.registration
        exact = exact_mapping(rgb_model, h.node.geometry.thermal, h.node.geometry.transform, None, q)
        fitted = cv2.perspectiveTransform(q.reshape(-1, 1, 2), reg.matrix).reshape(-1, 2)
        assert np.abs(fitted - exact).max() <= h.node.geometry.fit_error_px + 1e-6
        # the tracker gets it by a command on the worker thread (node/worker.py), so a moment later
        assert wait_for(lambda: h.node._tracker.registration is reg, 5.0), "worker never applied the registration"
        # finite depth: the 0.1 m baseline shifts by fx * t / d = 300 * 0.1 / 5 = 6 px (RGB pinhole part)
        before = reg.matrix
        assert all(r.successful for r in h.set_params(registration__depth_m=5.0))
        assert wait_for(lambda: h.node._settings.registration is not reg, 5.0)
        centre = cv2.perspectiveTransform(np.array([[[79.75, 63.75]]]), h.node._settings.registration.matrix)
        centre0 = cv2.perspectiveTransform(np.array([[[79.75, 63.75]]]), before)
        assert abs((centre - centre0)[0, 0, 0] - 6.0) < 0.5 and abs((centre - centre0)[0, 0, 1]) < 0.05
        # the transform changes (re-mounted camera): recomputed from TF within the poll period
        moved = h.node._settings.registration
        keep2 = static_tf(h.client, "camera_rgb", "camera_thermal", (0.2, 0.0, 0.0))
        assert wait_for(lambda: h.node._settings.registration is not moved, 5.0), "TF change not picked up"
        centre = cv2.perspectiveTransform(np.array([[[79.75, 63.75]]]), h.node._settings.registration.matrix)
        assert abs((centre - centre0)[0, 0, 0] - 12.0) < 0.5
        # and so does camera_info (a recalibrated thermal camera: principal point 4 px to the right)
        moved = h.node._settings.registration
        k_new = K_TIR.copy()
        k_new[0, 2] += 4.0
        info_pubs[1] = (info_pubs[1][0], camera_info(160, 128, k_new, [0.0] * 5, "camera_thermal"))
        assert wait_for(lambda: h.node._settings.registration is not moved, 5.0), "camera_info change not picked up"
        centre = cv2.perspectiveTransform(np.array([[[79.75, 63.75]]]), h.node._settings.registration.matrix)
        assert abs((centre - centre0)[0, 0, 0] - (12.0 - 8.0)) < 0.5  # 4 thermal px = 8 RGB px to the left

        scene = MovingTarget(thermal_scale=0.5)
        h.stream(scene, 20.0)
        assert wait_for(lambda: len(h.node.cache) >= 3, 10.0)
        assert h.set_target(scene.box(h.published[max(h.published)])).success
        n_det = h.n_dets()
        assert wait_for(lambda: len(rays) >= 5 and h.n_dets() > n_det + 3, 15.0), "no target rays"
        stamps = {(d.header.stamp.sec, d.header.stamp.nanosec): d for d in h.dets_since(0)}
        for ray in list(rays)[:5]:
            assert ray.header.frame_id == "camera_rgb"
            det = stamps.get((ray.header.stamp.sec, ray.header.stamp.nanosec))
            assert det is not None, "ray stamp is not an RGB image stamp"
            b = det.detections[0].bbox
            box = (b.center.position.x - b.size_x / 2, b.center.position.y - b.size_y / 2, b.size_x, b.size_y)
            u, v = box_centre_pixel(box, rgb_model, (256, 320))
            ref = cv2.undistortPointsIter(np.array([[[u, v]]]), K_RGB, np.array(D_RGB), None, None,
                                          (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-15))
            ref = np.append(ref.reshape(2), 1.0)
            got = np.array([ray.vector.x, ray.vector.y, ray.vector.z])
            assert abs(np.linalg.norm(got) - 1.0) < 1e-12
            err = np.arctan2(np.linalg.norm(np.cross(got, ref)), got @ ref)
            assert err < 1e-6
        marker = markers[-1]
        assert marker.type == Marker.ARROW and marker.header.frame_id == "camera_rgb" and len(marker.points) == 2
        diag = h.wait_diag(lambda v: "target_azimuth_rad" in v and "thermal_coverage" in v, 10.0)
        assert diag.get("registration_mode") == "camera_info" and diag.get("registration_source") == "camera_info + TF"
        az, el = azimuth_elevation([rays[-1].vector.x, rays[-1].vector.y, rays[-1].vector.z])
        assert abs(float(diag["target_azimuth_rad"])) <= np.pi and abs(float(diag["target_elevation_rad"])) <= np.pi
        assert float(diag["thermal_coverage"]) > 0.9, diag
        # nothing while not tracking
        h.clear_target()
        n = len(rays)
        wait_for(lambda: False, 1.0)
        assert len(rays) == n
        stop.set()
        del keep, keep2
    finally:
        h.close()


def test_bad_homography_warns_in_diagnostics(ctx):
    h = Harness(ctx, overrides={"registration.homography": [0.5, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0]})
    try:
        scene = MovingTarget(thermal_scale=0.5)
        h.stream(scene, 20.0)
        from sensor_msgs.msg import CameraInfo

        uncalibrated = h.client.create_publisher(CameraInfo, "thermal/camera_info", 5)  # K = 0, as many drivers

        def published():
            uncalibrated.publish(camera_info(160, 128, np.zeros((3, 3)), [], "camera_thermal"))
            return "thermal" in h.node.geometry._problems

        assert wait_for(published, 10.0, 0.2)
        diag = h.wait_diag(lambda v: "thermal_coverage" in v, 10.0)
        assert abs(float(diag["thermal_coverage"]) - 0.0625) < 0.01
        assert diag["_level"] == 1 and "covers 6% of the RGB frame" in diag["_message"]
        assert "camera_info" not in diag["_message"]  # not needed in homography mode: no warning
    finally:
        h.close()


def test_synthetic_camera_rig_registration_from_camera_info(ctx):
    """Acceptance: the demo camera's camera_info + static TF give its true homography within 0.5 px."""
    from rclpy.parameter import Parameter

    from ckd_ros.demo.camera import SyntheticCamera

    h = Harness(ctx, overrides={"registration.mode": "camera_info"})
    cam = SyntheticCamera(context=ctx, parameter_overrides=[
        Parameter("width", value=320), Parameter("height", value=256), Parameter("rate_hz", value=10.0),
        Parameter("thermal.offset", value=[6.0, -4.0]), Parameter("rgb_frame_id", value="camera_rgb"),
        Parameter("thermal_frame_id", value="camera_thermal")])
    h.executor.add_node(cam)
    try:
        assert wait_for(lambda: h.node.geometry.registration() is not None, 15.0), h.node.geometry.problem
        reg = h.node.geometry.registration()
        assert grid_error(reg.matrix, cam.thermal_to_rgb, 320, 256) < 0.5
        box = [100.0, 80.0, 40.0, 30.0]
        np.testing.assert_allclose(reg.box_thermal_to_rgb(box), [94.0, 84.0, 40.0, 30.0], atol=0.5)
        assert isinstance(h.node.geometry.rgb, CameraModel) and h.node.geometry.rgb.frame_id == "camera_rgb"
    finally:
        h.executor.remove_node(cam)
        cam.destroy_node()
        h.close()


def test_camera_info_mode_without_tf_says_what_is_missing(ctx):
    from sensor_msgs.msg import CameraInfo

    h = Harness(ctx, overrides={"registration.mode": "camera_info",
                                "registration.homography": [2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0]})
    try:
        diag = h.wait_diag(lambda v: "waiting for" in v["_message"], 10.0)
        assert diag["_level"] == 1 and "waiting for rgb/camera_info and thermal/camera_info" in diag["_message"]
        assert diag["registration_source"] == "registration.homography (no calibration yet)"
        assert h.node._settings.registration.as_list()[0] == 2.0  # the parameter is used meanwhile
        pubs = [(h.client.create_publisher(CameraInfo, "rgb/camera_info", 5), camera_info(320, 256, K_RGB, D_RGB,
                                                                                        "camera_rgb")),
                (h.client.create_publisher(CameraInfo, "thermal/camera_info", 5),
                 camera_info(160, 128, K_TIR, [0.0] * 5, "camera_thermal"))]

        def seen():
            for pub, info in pubs:
                pub.publish(info)
            return "no TF from 'camera_thermal' to 'camera_rgb'" in (h.node.geometry.problem or "")

        assert wait_for(seen, 10.0, 0.2), h.node.geometry.problem
        diag = h.wait_diag(lambda v: "no TF from" in v["_message"], 5.0)
        assert diag["_level"] == 1 and "static_transform_publisher" in diag["_message"]
        assert diag["rgb_camera_info"] == "camera_rgb plumb_bob"
    finally:
        h.close()
