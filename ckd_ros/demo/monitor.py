"""demo_monitor: the scripted part of `make demo` (a ROS node, run by launch/demo.launch.py).

1. waits for the tracker's `~/set_target` service and the camera's first ground-truth box;
2. calls set_target with that box and the frame's stamp (the node initialises on that exact pair);
3. for `duration_s` matches `~/detections` to `synthetic_camera/ground_truth` by stamp: fps,
   stamp-to-receipt latency, IoU; prints the result and writes a JSON summary and an overlay video.

The video is off the hot path: while the tracker runs the monitor only keeps half-size copies of the
raw frames (no thermal stretch, no drawing, no encoding); the panels are drawn and encoded after the
scored window, so the monitor does not compete with the tracker for the CPU (issue 14).

Exit code: 0 when the demo ran (even if below the acceptance thresholds, which it reports), 1 when
it could not run (no tracker, set_target refused, no results); with `check:=true` also 1 when the
acceptance (IoU > 0.5 on >= 80% of frames, >= 15 fps) is not met.
"""
from __future__ import annotations

import json
import pathlib
import sys
import time
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, RegionOfInterest
from sensor_msgs.srv import SetCameraInfo
from vision_msgs.msg import Detection2DArray

from ckd_ros.demo.score import DemoScore, draw_panel, iou
from ckd_ros.frames.ros_image import numpy_image_to_array
from ckd_ros.frames.thermal import ThermalNormalizer
from ckd_ros.node.detections import detection_box
from ckd_ros.synthetic.rig import map_box, rig_homography

PARAMS = {
    "tracker": "/ckd_tracker",
    "ground_truth": "/synthetic_camera/ground_truth",
    "duration_s": 20.0,
    "startup_timeout_s": 120.0,
    "out_dir": "out",
    "video": True,
    "video_max_frames": 1200,  # half-size frames kept for the video (~0.4 MB each); later ones are not filmed
    "check": False,
    "min_fps": 15.0,
    "min_frac_iou": 0.8,
    "thermal.homography": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],  # thermal -> RGB (for the overlay)
}
VIDEO_SCALE = 0.5  # frames are kept (and filmed) at half size


def _ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class DemoMonitor(Node):
    def __init__(self) -> None:
        super().__init__("demo_monitor")
        for name, default in PARAMS.items():
            self.declare_parameter(name, default)
        self.p = {name: self.get_parameter(name).value for name in PARAMS}
        tracker = self.p["tracker"].rstrip("/")
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.score = DemoScore()
        self.first_gt: Optional[Tuple[object, np.ndarray, Optional[int]]] = None
        self.window: Optional[Tuple[int, float]] = None  # (first scored stamp ns, wall start)
        self.frames: Dict[int, List[Optional[np.ndarray]]] = {}  # stamp -> [rgb, thermal16] at half size
        self.diag: Dict[str, str] = {}
        self.thermal_from_rgb = np.linalg.inv(rig_homography(homography=self.p["thermal.homography"]))
        self.video_path: Optional[pathlib.Path] = None
        self.init_frame: Optional[int] = None  # scene frame of set_target
        self.create_subscription(Detection2DArray, self.p["ground_truth"], self._on_gt, reliable)
        self.create_subscription(Detection2DArray, f"{tracker}/detections", self._on_result, reliable)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        if self.p["video"]:
            img_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
            self.create_subscription(Image, "rgb/image", self._on_rgb, img_qos)
            self.create_subscription(Image, "thermal/image", self._on_thermal, img_qos)
        self.client = self.create_client(SetCameraInfo, f"{tracker}/set_target")

    # ---- callbacks ---------------------------------------------------------------------------------
    def _on_gt(self, msg: Detection2DArray) -> None:
        if not msg.detections:
            return
        det = msg.detections[0]
        box = np.asarray(detection_box(det), np.float64)
        frame = int(det.id) if det.id.isdigit() else None  # synthetic_camera: id = scene frame index
        if self.first_gt is None:
            self.first_gt = (msg.header, box, frame)
        stamp = _ns(msg.header.stamp)
        if self.window is not None and stamp >= self.window[0]:
            self.score.add_gt(stamp, box, frame)

    def _on_result(self, msg: Detection2DArray) -> None:
        stamp = _ns(msg.header.stamp)
        if self.window is None or stamp < self.window[0]:
            return
        now_ns = self.get_clock().now().nanoseconds
        box = detection_box(msg.detections[0]) if msg.detections else None
        self.score.add_result(stamp, box, now_ns / 1e9, (now_ns - stamp) / 1e6)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "tracker" in status.name:
                self.diag = {kv.key: kv.value for kv in status.values}

    def _keep(self, msg: Image, slot: int) -> None:
        """Keep a half-size copy of the frame for the video (cheap; drawing waits for the end)."""
        stamp = _ns(msg.header.stamp)
        if self.window is None or stamp < self.window[0]:
            return
        if stamp not in self.frames:
            if len(self.frames) >= int(self.p["video_max_frames"]):
                return
            self.frames[stamp] = [None, None]
        img = numpy_image_to_array(msg)
        self.frames[stamp][slot] = cv2.resize(img, None, fx=VIDEO_SCALE, fy=VIDEO_SCALE,
                                              interpolation=cv2.INTER_AREA)

    def _on_rgb(self, msg: Image) -> None:
        self._keep(msg, 0)

    def _on_thermal(self, msg: Image) -> None:
        self._keep(msg, 1)

    # ---- video (after the run) ---------------------------------------------------------------------
    def _write_video(self) -> Optional[pathlib.Path]:
        """Draw and encode the kept frames in stamp order (frames without a result show GT only)."""
        frames = [(s, f) for s, f in sorted(self.frames.items()) if f[0] is not None]
        self.frames = {}
        if not frames:
            return None
        normalizer = ThermalNormalizer("percentile")
        path = pathlib.Path(self.p["out_dir"]) / "demo.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = None
        fps = self.score.fps()
        try:
            for s, (rgb, tir16) in frames:
                result, gt = self.score.results.get(s), self.score.gt.get(s)
                iou_text = f" IoU {iou(result, gt):.2f}" if result is not None and gt is not None else ""
                state = "no result" if s not in self.score.results else ("LOST" if result is None else "tracking")
                tir = None if tir16 is None else normalizer(tir16)[..., 0]
                tbox = None if result is None else map_box(result, self.thermal_from_rgb)
                panel = draw_panel(rgb, tir, _scaled(gt), _scaled(result), f"{state}{iou_text}  {fps:.1f} fps",
                                   _scaled(tbox), scale=1.0)
                if writer is None:
                    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 20.0,
                                             (panel.shape[1], panel.shape[0]))
                    if not writer.isOpened():
                        self.get_logger().warning(f"cannot open a video writer for {path}; no video")
                        return None
                writer.write(panel)
        finally:
            if writer is not None:
                writer.release()
        return path

    # ---- script ------------------------------------------------------------------------------------
    def run(self) -> int:
        log = self.get_logger()
        deadline = time.monotonic() + float(self.p["startup_timeout_s"])
        log.info(f"waiting for {self.client.srv_name} and the first ground-truth box ...")
        while rclpy.ok() and (self.first_gt is None or not self.client.service_is_ready()):
            rclpy.spin_once(self, timeout_sec=0.1)
            if time.monotonic() > deadline:
                what = "ground truth" if self.first_gt is None else f"service {self.client.srv_name}"
                log.error(f"no {what} after {self.p['startup_timeout_s']:.0f} s: is the tracker running?")
                return 1
        if not self._set_target(deadline):
            return 1
        t_end = time.monotonic() + float(self.p["duration_s"])
        while rclpy.ok() and time.monotonic() < t_end:
            rclpy.spin_once(self, timeout_sec=0.05)
        for _ in range(10):  # results still in flight for the last frames
            rclpy.spin_once(self, timeout_sec=0.02)
        return self._finish()

    def _set_target(self, deadline: float) -> bool:
        log = self.get_logger()
        last_reason = None
        while rclpy.ok() and time.monotonic() < deadline:
            header, box, frame = self.first_gt
            req = SetCameraInfo.Request()
            req.camera_info.header = header  # the frame the box belongs to; RGB pixels
            x, y, w, h = (int(round(v)) for v in box)
            req.camera_info.roi = RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h)
            future = self.client.call_async(req)
            rclpy.spin_until_future_complete(self, future, timeout_sec=10.0)
            res = future.result()
            if res is not None and res.success:
                self.window = (_ns(header.stamp), time.monotonic())
                log.info(f"set_target ({x}, {y}, {w}, {h}) on frame {header.stamp.sec}.{header.stamp.nanosec:09d}: "
                         f"{res.status_message or 'ok'}")
                self.score.add_gt(_ns(header.stamp), box, frame)
                self.init_frame = frame
                return True
            reason = res.status_message if res else "no answer"
            if reason != last_reason:  # the tracker may still be loading its model: say so once
                log.info(f"set_target not accepted yet ({reason}); retrying on a newer frame")
                last_reason = reason
            time.sleep(0.2)
            self.first_gt = None
            while rclpy.ok() and self.first_gt is None and time.monotonic() < deadline:
                rclpy.spin_once(self, timeout_sec=0.1)
        log.error("set_target never succeeded")
        return False

    def _finish(self) -> int:
        s = self.score.summary(float(self.p["min_frac_iou"]), float(self.p["min_fps"]))
        s["tracker_diagnostics"] = {k: v for k, v in self.diag.items() if k.startswith(("latency", "fps", "backend"))}
        s["duration_s"] = float(self.p["duration_s"])
        s["init_frame"] = self.init_frame
        out = pathlib.Path(self.p["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        ran = s["processed_frames"] > 0
        s["exit_code"] = 0 if ran and (s["passed"] or not self.p["check"]) else 1
        t0 = time.monotonic()
        self.video_path = self._write_video() if self.p["video"] else None
        s["video_write_s"] = round(time.monotonic() - t0, 2)
        s["per_frame"] = s.pop("per_frame")  # the long list last in the JSON
        (out / "demo_summary.json").write_text(json.dumps(s, indent=2) + "\n", encoding="utf-8")
        infer = self.diag.get("latency_inference_ms", "n/a")
        lines = [
            "==== CKD demo result ====",
            f"frames: {s['processed_frames']} tracked of {s['camera_frames']} published "
            f"({100 * s['processed_fraction']:.0f}%), {s['lost_frames']} LOST",
            f"fps: {s['fps']:.1f} (tracker results per second; needs >= {self.p['min_fps']:g})",
            f"latency image stamp -> result: mean {s['latency_ms_mean'] or 0:.1f} ms, "
            f"p50 {s['latency_ms_p50'] or 0:.1f} ms, p95 {s['latency_ms_p95'] or 0:.1f} ms; inference {infer}",
            f"IoU vs ground truth: mean {s['iou_mean']:.3f}, > 0.5 on {100 * s['frac_iou_gt_0_5']:.1f}% of frames "
            f"(needs >= {100 * self.p['min_frac_iou']:.0f}%)",
            f"acceptance: {'PASS' if s['passed'] else 'FAIL'}; video {self.video_path or 'none'}, "
            f"summary {out / 'demo_summary.json'}",
        ]
        print("\n".join(lines), flush=True)
        if not ran:
            self.get_logger().error("the tracker published no results")
        return s["exit_code"]


def _scaled(box):
    return None if box is None else [float(v) * VIDEO_SCALE for v in box]


def main(args=None) -> int:
    rclpy.init(args=args)
    node = None
    code = 1
    try:
        node = DemoMonitor()
        code = node.run()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
