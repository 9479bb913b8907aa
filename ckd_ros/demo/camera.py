"""synthetic_camera: a seeded synthetic RGB-thermal camera pair with ground truth, for demos and tests.

Publishes `rgb/image` (rgb8, frame_id `rgb_camera`), `thermal/image` (mono16 radiometric counts =
kelvin*100, frame_id `thermal_camera`) with the same stamp, and `~/ground_truth`
(vision_msgs/Detection2DArray in RGB pixels, header = the RGB image's header). The thermal camera
can be offset from the RGB camera (`thermal.offset` pixels or a full `thermal.homography`, thermal
-> RGB, the value the tracker's `registration.homography` needs); the thermal image is re-projected
accordingly. Frame t of the stream is frame t of `SyntheticScene(seed, size, scenario, period)`.
"""
from __future__ import annotations

import sys
import time

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
    "rgb_frame_id": "rgb_camera",
    "thermal_frame_id": "thermal_camera",
    "thermal.offset": [0.0, 0.0],  # thermal pixel = RGB pixel + offset
    "thermal.homography": [0.0],  # 9 floats thermal -> RGB; [0.0] = use thermal.offset
    "reliable": True,  # reliable keeps every frame for local subscribers; false = sensor-data QoS
    "label": "target",
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
        self.render_s = 0.0
        self.timer = self.create_timer(1.0 / p["rate_hz"], self._tick)
        rig = "aligned" if is_identity(self.thermal_to_rgb) else \
            "thermal->RGB homography " + ",".join(f"{v:g}" for v in self.thermal_to_rgb.ravel())
        self.get_logger().info(
            f"synthetic RGB-T camera: seed {p['seed']}, scenario '{self.scene.scenario}' "
            f"({', '.join(sorted(self.scene.effects)) or 'no effects'}), {self.scene.width}x{self.scene.height} "
            f"at {p['rate_hz']:g} Hz, {rig}")

    def _tick(self) -> None:
        if self.remaining == 0:
            return
        t0 = time.perf_counter()
        rgb, tir, box = self.scene.frame(self.t)
        tir = thermal_view(tir, self.thermal_to_rgb)
        stamp = self.get_clock().now().to_msg()
        rgb_msg = array_to_image_msg(rgb, "rgb8")
        rgb_msg.header.stamp, rgb_msg.header.frame_id = stamp, self.rgb_frame_id
        tir_msg = array_to_image_msg(tir, "mono16")
        tir_msg.header.stamp, tir_msg.header.frame_id = stamp, self.thermal_frame_id
        self.rgb_pub.publish(rgb_msg)
        self.tir_pub.publish(tir_msg)
        self.gt_pub.publish(build_detections(rgb_msg.header, box, 1.0, self.label, str(self.t)))
        self.render_s = time.perf_counter() - t0
        self.t += 1
        if self.remaining > 0:
            self.remaining -= 1


def main(args=None) -> int:
    from ckd_ros.node import handle_help

    handle_help("synthetic_camera", "Seeded synthetic RGB-T camera node (demo): publishes rgb8 + mono16 images "
                "and the ground-truth box; parameters via --ros-args -p name:=value (docs/demo.md).", args)
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
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

