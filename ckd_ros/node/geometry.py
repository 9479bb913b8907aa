"""The node's geometry: registration from camera_info + TF, and the target direction.

* `registration.mode: camera_info`: subscribes `rgb/camera_info` and `thermal/camera_info` (siblings
  of the image topics, remappable), looks up the transform between the two optical frames in TF
  (`lookup_transform(rgb_frame, thermal_frame)`: thermal optical frame -> RGB optical frame, p_rgb =
  R p_thermal + t) and computes the thermal -> RGB homography for the plane `registration.depth_m`
  in front of the thermal camera (0 = infinity), `tracking.registration.registration_from_calibration`.
  It is recomputed when camera_info or the transform changes; until both are there the node uses
  `registration.homography`.
* Target direction: with the RGB camera_info, every TRACKING result publishes the unit ray towards
  the box centre in the RGB optical frame (REP 103: x right, y down, z forward), undistorted with
  the camera model: `~/target_ray` (geometry_msgs/Vector3Stamped) and `~/target_marker`
  (visualization_msgs/Marker, an arrow along the ray), both stamped with the RGB image's header.
  Nothing is published while LOST or idle (the marker expires after MARKER_LIFETIME_S).
* Diagnostics: registration source, fit error, thermal coverage of the RGB frame (WARN below
  `registration.MIN_COVERAGE`), azimuth/elevation of the last ray in radians (`camera_model.azimuth_elevation`).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ckd_ros.errors import CKDError
from ckd_ros.tracking.camera_model import CameraModel, RigidTransform, azimuth_elevation
from ckd_ros.tracking.registration import Registration, registration_from_calibration, thermal_overlap

CAMERA_INFO_TOPICS = ("rgb/camera_info", "thermal/camera_info")
TF_POLL_S = 1.0  # how often the transform is looked up again (TF changes: recalibration, moving mounts)
MARKER_LENGTH_M = 2.0
MARKER_LIFETIME_S = 0.5
ANGLES_FRESH_S = 2.0  # diagnostics show the last azimuth/elevation this long


def box_centre_pixel(box_xywh, model: CameraModel, image_hw) -> Tuple[float, float]:
    """Box centre in the camera_info pixel convention (u, v of K: pixel i's centre is at i).

    Tracker boxes have pixel i spanning [i, i + 1), so the centre (x + w/2, y + h/2) is shifted by
    -0.5; camera_info of another resolution than the image (binning) is scaled to.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    sx, sy = model.width / float(image_hw[1]), model.height / float(image_hw[0])
    return (x + w / 2.0) * sx - 0.5, (y + h / 2.0) * sy - 0.5


class GeometryHelper:
    """Owned by the tracker node. `values` is the node's live parameter dict; `on_change()` is called
    (from an executor thread) when the calibrated registration changes."""

    def __init__(self, node, values: Dict[str, Any], on_change: Callable[[], None], callback_group=None) -> None:
        from geometry_msgs.msg import Vector3Stamped  # noqa: PLC0415
        from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: PLC0415
        from sensor_msgs.msg import CameraInfo  # noqa: PLC0415
        from visualization_msgs.msg import Marker  # noqa: PLC0415

        self._node = node
        self._values = values
        self._on_change = on_change
        self._lock = threading.Lock()
        self.rgb: Optional[CameraModel] = None
        self.thermal: Optional[CameraModel] = None
        self.transform: Optional[RigidTransform] = None
        self._registration: Optional[Registration] = None
        self._version = 0  # bumped whenever a camera model or the transform changes
        self._key: Optional[Tuple] = None  # (depth, version) the registration was computed for
        self.fit_error_px: Optional[float] = None
        self._problems: Dict[str, str] = {}  # source (rgb, thermal, tf, registration) -> one line
        self._sizes: Optional[Tuple[Tuple[int, int], Tuple[int, int]]] = None  # (thermal wh, rgb wh)
        self._coverage: Optional[Tuple[Any, Any]] = None  # (key, Overlap)
        self._angles: Optional[Tuple[float, float, float]] = None  # az, el, monotonic time
        self._tf_buffer = self._tf_listener = None
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches reliable publishers too
        for topic, which in zip(CAMERA_INFO_TOPICS, ("rgb", "thermal")):
            node.create_subscription(CameraInfo, topic, lambda msg, w=which: self._on_camera_info(w, msg), qos,
                                     callback_group=callback_group)
        self._ray_pub = node.create_publisher(Vector3Stamped, "~/target_ray", 10)
        self._marker_pub = node.create_publisher(Marker, "~/target_marker", 10)
        node.create_timer(TF_POLL_S, self._poll_tf, callback_group=callback_group)

    # ---- registration ------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._values.get("registration.mode", "homography")

    def registration(self) -> Optional[Registration]:
        """The calibrated registration in camera_info mode once available; None: use registration.homography."""
        with self._lock:
            return self._registration if self.mode == "camera_info" else None

    def on_parameters(self, names) -> None:
        """After a parameter change (`names`: the changed parameter names): recompute when mode/depth changed."""
        if names & {"registration.mode", "registration.depth_m"}:
            self._recompute()

    @property
    def problem(self) -> Optional[str]:
        """What keeps the geometry from working, in one line (None: nothing)."""
        with self._lock:
            return "; ".join(self._problems.values()) or None

    def _set_problem(self, source: str, text: Optional[str]) -> None:
        """Call with the lock held."""
        if text is None:
            self._problems.pop(source, None)
        else:
            self._problems[source] = text

    def _on_camera_info(self, which: str, msg) -> None:
        try:
            model = CameraModel.from_camera_info(msg)
        except CKDError as exc:
            with self._lock:
                self._set_problem(which, f"{which} camera_info refused: {exc}")
            return
        with self._lock:
            self._set_problem(which, None)
            old = self.rgb if which == "rgb" else self.thermal
            if model.same_as(old):
                return
            if which == "rgb":
                self.rgb = model
            else:
                self.thermal = model
            self._version += 1
        self._recompute()

    def _poll_tf(self) -> None:
        if self.mode != "camera_info" or self.rgb is None or self.thermal is None:
            return
        if self._tf_buffer is None:
            from tf2_ros import Buffer, TransformListener  # noqa: PLC0415

            self._tf_buffer = Buffer()
            self._tf_listener = TransformListener(self._tf_buffer, self._node, spin_thread=False)
        self.lookup_transform()

    def lookup_transform(self) -> None:
        """Latest thermal -> RGB optical-frame transform from TF; recomputes when it changed."""
        import rclpy  # noqa: PLC0415

        target, source = self.rgb.frame_id, self.thermal.frame_id
        try:
            stamped = self._tf_buffer.lookup_transform(target, source, rclpy.time.Time())
            transform = RigidTransform.from_msg(stamped.transform)
        except CKDError as exc:
            with self._lock:
                self._set_problem("tf", f"TF {target} <- {source} refused: {exc}")
            return
        except Exception as exc:  # tf2 Lookup/Connectivity/Extrapolation: not there (yet)
            with self._lock:
                self._set_problem("tf", f"no TF from '{source}' to '{target}' ({type(exc).__name__}); publish "
                                  "the transform between the optical frames (URDF / static_transform_publisher)")
            return
        with self._lock:
            self._set_problem("tf", None)
            if transform.same_as(self.transform):
                return
            self.transform = transform
            self._version += 1
        self._recompute()

    def _recompute(self) -> None:
        with self._lock:
            if self.mode != "camera_info":
                changed = self._registration is not None
                self._registration, self._key = None, None
                self._problems.clear()
            elif self.rgb is None or self.thermal is None or self.transform is None:
                missing = [n for n, v in (("rgb/camera_info", self.rgb), ("thermal/camera_info", self.thermal),
                                          ("TF", self.transform)) if v is None]
                self._set_problem("registration", f"registration.mode camera_info: waiting for {', '.join(missing)}")
                changed = False
            else:
                depth = float(self._values.get("registration.depth_m", 0.0)) or None
                key = (depth, self._version)
                if key == self._key:
                    return
                try:
                    reg, fit = registration_from_calibration(self.rgb, self.thermal, self.transform, depth)
                except (CKDError, ValueError) as exc:
                    self._set_problem("registration", f"registration from camera_info refused: {exc}")
                    return
                self._registration, self._key, self.fit_error_px = reg, key, fit
                self._set_problem("registration", None)
                changed = True
        if changed:
            reg = self._registration
            self._node.get_logger().info(
                "registration from camera_info + TF: " + ("registration.homography" if reg is None else
                                                          ", ".join(f"{v:.6g}" for v in reg.as_list())))
            self._on_change()

    # ---- target direction ---------------------------------------------------------------------------
    def publish(self, outcome) -> None:
        """Ray + marker for a TRACKING outcome (worker thread); remembers image sizes for the coverage."""
        decoded = outcome.decoded
        rgb_hw, tir_hw = decoded.rgb.shape[:2], decoded.tir8.shape[:2]
        self._sizes = ((tir_hw[1], tir_hw[0]), (rgb_hw[1], rgb_hw[0]))
        model = self.rgb
        if outcome.state != "tracking" or outcome.box is None or model is None:
            return
        ray = model.pixels_to_rays([box_centre_pixel(outcome.box, model, rgb_hw)])[0]
        if not np.all(np.isfinite(ray)):
            return
        header = decoded.pair.rgb.header
        self._publish_ray(header, ray)
        az, el = azimuth_elevation(ray)
        self._angles = (az, el, time.monotonic())

    def _publish_ray(self, header, ray: np.ndarray) -> None:
        from geometry_msgs.msg import Point, Vector3, Vector3Stamped  # noqa: PLC0415
        from visualization_msgs.msg import Marker  # noqa: PLC0415

        vec = Vector3(x=float(ray[0]), y=float(ray[1]), z=float(ray[2]))
        self._ray_pub.publish(Vector3Stamped(header=header, vector=vec))
        marker = Marker(header=header, ns="ckd_target_ray", id=0, type=Marker.ARROW, action=Marker.ADD)
        marker.points = [Point(), Point(x=vec.x * MARKER_LENGTH_M, y=vec.y * MARKER_LENGTH_M,
                                        z=vec.z * MARKER_LENGTH_M)]
        marker.scale.x, marker.scale.y, marker.scale.z = 0.02, 0.06, 0.12  # shaft, head diameter, head length
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = 0.1, 1.0, 0.2, 0.9
        marker.pose.orientation.w = 1.0
        marker.lifetime.nanosec = int(MARKER_LIFETIME_S * 1e9)
        self._marker_pub.publish(marker)

    # ---- diagnostics --------------------------------------------------------------------------------
    def coverage(self, registration: Registration):
        """`registration.thermal_overlap` for the current registration and image sizes (cached)."""
        sizes = self._sizes
        if sizes is None:
            return None
        key = (tuple(registration.as_list()), sizes)
        cached = self._coverage
        if cached is None or cached[0] != key:
            cached = self._coverage = (key, thermal_overlap(registration, sizes[0], sizes[1]))
        return cached[1]

    def diagnostics(self, registration: Optional[Registration]) -> Tuple[Dict[str, str], Optional[str]]:
        """(key/values, warning or None) for the node's /diagnostics status.

        Calibration problems warn only in camera_info mode (many thermal drivers publish an
        uncalibrated camera_info, K = 0); otherwise they show as `rgb_camera_info` / values.
        """
        values = {"registration_mode": self.mode}
        warnings = []
        with self._lock:
            fit, calibrated, problems = self.fit_error_px, self._registration, dict(self._problems)
        if self.mode == "camera_info":
            values["registration_source"] = ("camera_info + TF" if calibrated is not None
                                             else "registration.homography (no calibration yet)")
            if fit is not None:
                values["registration_fit_error_px"] = f"{fit:.3f}"
            if calibrated is None and not problems:
                problems["registration"] = ("registration.mode camera_info: waiting for rgb/camera_info and "
                                            "thermal/camera_info")
            warnings.extend(problems.values())
        if registration is not None and not registration.is_identity:
            overlap = self.coverage(registration)
            if overlap is not None:
                values["thermal_coverage"] = f"{overlap.frame:.3f}"
                if overlap.warning():
                    warnings.append(overlap.warning())
        values["rgb_camera_info"] = problems.get("rgb") or (
            "none" if self.rgb is None else f"{self.rgb.frame_id} {self.rgb.model}")
        angles = self._angles
        if angles is not None and time.monotonic() - angles[2] <= ANGLES_FRESH_S:
            values["target_azimuth_rad"] = f"{angles[0]:.6f}"
            values["target_elevation_rad"] = f"{angles[1]:.6f}"
        return values, "; ".join(warnings) or None
