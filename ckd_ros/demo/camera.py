"""synthetic_camera: a seeded synthetic RGB-thermal camera pair with ground truth, for demos and tests.

Publishes `rgb/image` (rgb8, frame_id `rgb_camera`), `thermal/image` (mono16 radiometric counts =
kelvin*100, frame_id `thermal_camera`) with the same stamp, and `~/ground_truth`
(vision_msgs/Detection2DArray in RGB pixels, header = the RGB image's header). The thermal camera
can be offset from the RGB camera (`thermal.offset` pixels or a full `thermal.homography`, thermal
-> RGB, the value the tracker's `registration.homography` needs); the thermal image is re-projected
accordingly. With `camera_info` (default) it also publishes `rgb/camera_info`, `thermal/camera_info`
(pinhole, `hfov_deg`) and the static TF `rgb_camera` -> `thermal_camera` whose homography is exactly
that offset (the tracker's `registration.mode: camera_info` recovers it).
Frame t of the stream is frame t of `SyntheticScene(seed, size, scenario, period)`.

`cache_frames: N > 0` makes the camera cheap (the demo's setting): N frames are rendered, warped and
converted to messages once at start-up, then played back and forth (0..N-1, N-2..1, ...), so motion
stays continuous and publishing a frame costs only its serialisation. 0 renders every frame live.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from ckd_ros.frames.ros_image import array_to_image_msg
from ckd_ros.node.detections import build_detections
from ckd_ros.synthetic import SCENARIOS, SyntheticScene
from ckd_ros.synthetic.rig import is_identity, rig_homography, thermal_view

PARAMS = {
    "seed": 0,
    "width": 640,
    "height": 512,
    "scenario": "",  # '' = chosen by the seed
    "period": 300,  # frames between repetitions of the scenario's event (night, crossover, ...)
    "rate_hz": 15.0,
    "start_frame": 0,
    "num_frames": 0,  # > 0: stop publishing after this many frames (tests); 0 = forever
    "cache_frames": 0,  # > 0: pre-render this many frames and play them back and forth (cheap); 0 = live
    "rgb_frame_id": "rgb_camera",
    "thermal_frame_id": "thermal_camera",
    "thermal.offset": [0.0, 0.0],  # thermal pixel = RGB pixel + offset
    "thermal.homography": [0.0],  # 9 floats thermal -> RGB; [0.0] = use thermal.offset
    "reliable": True,  # reliable keeps every frame for local subscribers; false = sensor-data QoS
    "label": "target",
    "camera_info": True,  # publish rgb/camera_info, thermal/camera_info and the static TF of the rig
    "hfov_deg": 60.0,  # horizontal field of view of the RGB camera (camera_info K)
}


class SyntheticCamera(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("synthetic_camera", **kwargs)
        for name, default in PARAMS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMS}
        scenario = p["scenario"] or None
        if scenario is not None and scenario not in SCENARIOS:
            raise ValueError(f"scenario '{scenario}' unknown; choose one of {', '.join(SCENARIOS)} or ''")
        if not p["rate_hz"] > 0:
            raise ValueError(f"rate_hz must be > 0, got {p['rate_hz']}")
        homography = [float(v) for v in p["thermal.homography"]]
        self.thermal_to_rgb = rig_homography(p["thermal.offset"], homography)
        self.scene = SyntheticScene(p["seed"], (p["width"], p["height"]), scenario=scenario, period=p["period"])
        self.rgb_frame_id, self.thermal_frame_id = p["rgb_frame_id"], p["thermal_frame_id"]
        self.label = p["label"]
        self.t = int(p["start_frame"])
        self.remaining = int(p["num_frames"]) or -1
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                         reliability=ReliabilityPolicy.RELIABLE if p["reliable"] else ReliabilityPolicy.BEST_EFFORT)
        self.rgb_pub = self.create_publisher(Image, "rgb/image", qos)
        self.tir_pub = self.create_publisher(Image, "thermal/image", qos)
        self.gt_pub = self.create_publisher(Detection2DArray, "~/ground_truth", 10)
        self.cache_frames = int(p["cache_frames"])
        if self.cache_frames < 0:
            raise ValueError(f"cache_frames must be >= 0, got {self.cache_frames}")
        self.start_frame = int(p["start_frame"])
        self._cache = []
        if self.cache_frames:
            t0 = time.perf_counter()
            self._cache = [self._render(self.start_frame + k) for k in range(self.cache_frames)]
            last = self.start_frame + self.cache_frames - 1
            self.get_logger().info(f"pre-rendered {self.cache_frames} frames (scene frames {self.start_frame}-{last}) "
                                   f"in {time.perf_counter() - t0:.1f} s (played back and forth)")
        self.timer = self.create_timer(1.0 / p["rate_hz"], self._tick)
        self.camera_infos = self._start_calibration(p) if p["camera_info"] else None
        rig = "aligned" if is_identity(self.thermal_to_rgb) else \
            "thermal->RGB homography " + ",".join(f"{v:g}" for v in self.thermal_to_rgb.ravel())
        self.get_logger().info(
            f"synthetic RGB-T camera: seed {p['seed']}, scenario '{self.scene.scenario}' "
            f"({', '.join(sorted(self.scene.effects)) or 'no effects'}), {self.scene.width}x{self.scene.height} "
            f"at {p['rate_hz']:g} Hz, {rig}")

    def _render(self, t: int):
        """(rgb msg, thermal msg, box) of scene frame t (headers filled in at publishing time)."""
        rgb, tir, box = self.scene.frame(t)
        tir = thermal_view(tir, self.thermal_to_rgb)
        rgb_msg = array_to_image_msg(rgb, "rgb8", frame_id=self.rgb_frame_id)
        tir_msg = array_to_image_msg(tir, "mono16", frame_id=self.thermal_frame_id)
        return rgb_msg, tir_msg, box

    def scene_frame(self, tick: int) -> int:
        """Scene frame shown at tick `tick` (0, 1, ...): the tick itself when live, else ping-pong."""
        n = self.cache_frames
        if n == 0:
            return self.start_frame + tick
        if n == 1:
            return self.start_frame
        i = tick % (2 * n - 2)
        return self.start_frame + (i if i < n else 2 * n - 2 - i)

    def _start_calibration(self, p):
        """camera_info of both cameras (co-located pinholes, synthetic.rig.rig_intrinsics) and the static
        TF rgb_frame -> thermal_frame (identity: same optical centre and axes), so the tracker's
        `registration.mode: camera_info` recovers `thermal_to_rgb`. None if the rig has no such form."""
        from geometry_msgs.msg import TransformStamped  # noqa: PLC0415
        from sensor_msgs.msg import CameraInfo  # noqa: PLC0415
        from tf2_ros import StaticTransformBroadcaster  # noqa: PLC0415

        from ckd_ros.synthetic.rig import rig_intrinsics  # noqa: PLC0415

        w, h = self.scene.width, self.scene.height
        k_rgb, k_tir = rig_intrinsics(w, h, self.thermal_to_rgb, float(p["hfov_deg"]))
        if k_tir is None:
            self.get_logger().warning("thermal.homography is not an offset/scale: no camera_info published")
            return None
        infos = []
        for topic, k, frame in (("rgb/camera_info", k_rgb, self.rgb_frame_id),
                                ("thermal/camera_info", k_tir, self.thermal_frame_id)):
            info = CameraInfo(width=w, height=h, distortion_model="plumb_bob", d=[0.0] * 5)
            info.k = k.reshape(-1).tolist()
            info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            info.p = np.c_[k, np.zeros(3)].reshape(-1).tolist()
            info.header.frame_id = frame
            infos.append((self.create_publisher(CameraInfo, topic, 5), info))
        tf = TransformStamped()
        tf.header.stamp = self.get_clock().now().to_msg()
        tf.header.frame_id, tf.child_frame_id = self.rgb_frame_id, self.thermal_frame_id
        tf.transform.rotation.w = 1.0
        self.tf_broadcaster = StaticTransformBroadcaster(self)
        self.tf_broadcaster.sendTransform(tf)
        return infos

    def _tick(self) -> None:
        if self.remaining == 0:
            return
        frame = self.scene_frame(self.t - self.start_frame)
        if self._cache:
            rgb_msg, tir_msg, box = self._cache[frame - self.start_frame]
        else:
            rgb_msg, tir_msg, box = self._render(frame)
        stamp = self.get_clock().now().to_msg()
        rgb_msg.header.stamp = stamp
        tir_msg.header.stamp = stamp
        self.rgb_pub.publish(rgb_msg)
        self.tir_pub.publish(tir_msg)
        self.gt_pub.publish(build_detections(rgb_msg.header, box, 1.0, self.label, str(frame)))
        if self.camera_infos is not None:
            for pub, info in self.camera_infos:
                info.header.stamp = stamp
                pub.publish(info)
        self.t += 1
        if self.remaining > 0:
            self.remaining -= 1


def main(args=None) -> int:
    from ckd_ros.node import handle_help

    handle_help("synthetic_camera", "Seeded synthetic RGB-T camera node (demo): publishes rgb8 + mono16 images, "
                "camera_info, the rig's static TF and the ground-truth box; parameters via --ros-args -p "
                "name:=value (docs/demo.md).", args)
    try:
        return _run(args)
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down: no traceback
        return 0


def _run(args=None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = SyntheticCamera()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C / SIGTERM from launch
        pass
    except ValueError as exc:  # bad parameters: one clear line, non-zero exit
        print(f"synthetic_camera: {exc}", file=sys.stderr)
        return 2
    except Exception:  # RCLError "publisher's context is invalid": Ctrl-C shut down while publishing
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

