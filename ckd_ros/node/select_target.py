"""`ros2 run ckd_ros select_target`: drag a box on the tracker's overlay, it becomes the target.

Shows an image topic (default `<tracker>/debug/image`; any RGB or thermal image works) in an
OpenCV window. Pressing the mouse button freezes the frame, dragging draws the box, releasing
calls `<tracker>/set_target` with that frame's stamp and frame_id, so the node initialises on
exactly the frame the box was drawn on and catches up. Keys: c = clear target, q/Esc = quit.

The window logic (`TargetSelector`, `build_request`) needs no display and is unit-tested; only
`main()` opens a window (it needs an OpenCV build with GUI support, not opencv-python-headless).
"""
from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

MIN_BOX_PX = 4  # smaller drags are treated as clicks (ignored)


@dataclass
class Selection:
    box: Tuple[int, int, int, int]  # x, y, w, h in image pixels
    stamp: Tuple[int, int]  # sec, nanosec of the frame the box was drawn on
    frame_id: str


def box_from_points(p0, p1, scale: float, width: int, height: int) -> Optional[Tuple[int, int, int, int]]:
    """Drag corners in window pixels -> (x, y, w, h) in image pixels, clipped; None if too small."""
    x0, x1 = sorted((p0[0] / scale, p1[0] / scale))
    y0, y1 = sorted((p0[1] / scale, p1[1] / scale))
    x0, y0 = max(0, int(round(x0))), max(0, int(round(y0)))
    x1, y1 = min(width, int(round(x1))), min(height, int(round(y1)))
    if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
        return None
    return x0, y0, x1 - x0, y1 - y0


def build_request(selection: Selection):
    """sensor_msgs/srv/SetCameraInfo request as the tracker reads it (roi + header)."""
    from sensor_msgs.srv import SetCameraInfo  # noqa: PLC0415

    req = SetCameraInfo.Request()
    req.camera_info.header.stamp.sec, req.camera_info.header.stamp.nanosec = selection.stamp
    req.camera_info.header.frame_id = selection.frame_id
    x, y, w, h = selection.box
    roi = req.camera_info.roi
    roi.x_offset, roi.y_offset, roi.width, roi.height = int(x), int(y), int(w), int(h)
    return req


class TargetSelector:
    """Frames in, mouse events in, a Selection out when a drag ends. Thread-safe (ROS thread feeds frames)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)
        self._lock = threading.Lock()
        self._latest = None  # (bgr image, stamp, frame_id)
        self._frozen = None
        self._p0 = self._p1 = None
        self.status = "drag a box around the target (c: clear, q: quit)"

    def on_frame(self, bgr: np.ndarray, stamp: Tuple[int, int], frame_id: str) -> None:
        with self._lock:
            self._latest = (bgr, stamp, frame_id)

    def on_mouse(self, event: int, x: int, y: int) -> Optional[Selection]:
        with self._lock:
            if event == cv2.EVENT_LBUTTONDOWN:
                if self._latest is None:
                    self.status = "no image yet"
                    return None
                self._frozen = self._latest  # the box belongs to this frame, however long the drag takes
                self._p0 = self._p1 = (x, y)
            elif event == cv2.EVENT_MOUSEMOVE and self._p0 is not None:
                self._p1 = (x, y)
            elif event == cv2.EVENT_LBUTTONUP and self._p0 is not None:
                frame, p0 = self._frozen, self._p0
                self._frozen = self._p0 = self._p1 = None
                img, stamp, frame_id = frame
                box = box_from_points(p0, (x, y), self.scale, img.shape[1], img.shape[0])
                if box is None:
                    self.status = "box too small, drag again"
                    return None
                return Selection(box, stamp, frame_id)
        return None

    def view(self) -> Optional[np.ndarray]:
        """What the window shows: the frozen frame while dragging, else the newest, with the drag box."""
        with self._lock:
            frame = self._frozen or self._latest
            p0, p1, status = self._p0, self._p1, self.status
        if frame is None:
            return None
        img = frame[0]
        if self.scale != 1.0:
            img = cv2.resize(img, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_LINEAR)
        else:
            img = img.copy()
        if p0 is not None:
            cv2.rectangle(img, p0, p1, (0, 255, 255), 2)
        cv2.putText(img, status, (6, img.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
        return img


def gui_available() -> Tuple[bool, str]:
    try:
        cv2.namedWindow("ckd_probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("ckd_probe")
        return True, ""
    except cv2.error as exc:
        return False, str(exc).strip().splitlines()[-1] if str(exc).strip() else "no GUI backend"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="select_target", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracker", default="/ckd_tracker", help="the tracker node's name (with namespace)")
    parser.add_argument("--image", default=None, help="image topic to show (default <tracker>/debug/image)")
    parser.add_argument("--scale", type=float, default=1.0, help="window scale factor")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import rclpy  # noqa: PLC0415
    from rclpy.qos import qos_profile_sensor_data  # noqa: PLC0415
    from sensor_msgs.msg import Image  # noqa: PLC0415
    from sensor_msgs.srv import SetCameraInfo  # noqa: PLC0415
    from std_srvs.srv import Trigger  # noqa: PLC0415

    from ckd_ros.frames.ros_image import ImageConversionError, NumpyImageConverter, decode_rgb  # noqa: PLC0415

    argv = sys.argv if argv is None else argv
    args = parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    ok, why = gui_available()
    if not ok:
        print(f"select_target: OpenCV has no GUI support here ({why}). Install an OpenCV with GUI "
              "(apt python3-opencv or pip opencv-python), or call the service directly:\n"
              f"  ros2 service call {args.tracker}/set_target sensor_msgs/srv/SetCameraInfo "
              "\"{camera_info: {roi: {x_offset: 100, y_offset: 80, width: 60, height: 40}}}\"", file=sys.stderr)
        return 2
    rclpy.init(args=argv)
    node = rclpy.create_node("select_target")
    tracker = args.tracker.rstrip("/")
    topic = args.image or f"{tracker}/debug/image"
    selector = TargetSelector(args.scale)
    converter = NumpyImageConverter()

    def on_image(msg):
        try:
            bgr = cv2.cvtColor(decode_rgb(msg, converter), cv2.COLOR_RGB2BGR)
        except ImageConversionError as exc:
            node.get_logger().warning(str(exc), throttle_duration_sec=5.0)
            return
        selector.on_frame(bgr, (msg.header.stamp.sec, msg.header.stamp.nanosec), msg.header.frame_id)

    node.create_subscription(Image, topic, on_image, qos_profile_sensor_data)
    set_cli = node.create_client(SetCameraInfo, f"{tracker}/set_target")
    clear_cli = node.create_client(Trigger, f"{tracker}/clear_target")
    pending = []

    def send(sel: Selection) -> None:
        if not set_cli.service_is_ready():
            selector.status = f"{tracker}/set_target not available"
            return
        selector.status = f"set_target {sel.box} ..."
        pending.append(set_cli.call_async(build_request(sel)))

    window = f"select_target: {topic}"
    cv2.namedWindow(window, cv2.WINDOW_AUTOSIZE)
    cv2.setMouseCallback(window, lambda e, x, y, f, p: (lambda s: s and send(s))(selector.on_mouse(e, x, y)))
    node.get_logger().info(f"showing {topic}; drag a box to call {tracker}/set_target")
    try:
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.01)
            for fut in [f for f in pending if f.done()]:
                pending.remove(fut)
                res = fut.result()
                selector.status = ("OK: " if res.success else "rejected: ") + res.status_message[:90]
                node.get_logger().info(selector.status)
            img = selector.view()
            if img is not None:
                cv2.imshow(window, img)
            key = cv2.waitKey(10) & 0xFF
            if key in (ord("q"), 27):
                break
            if key == ord("c") and clear_cli.service_is_ready():
                clear_cli.call_async(Trigger.Request())
                selector.status = "target cleared"
    except KeyboardInterrupt:
        pass
    finally:
        cv2.destroyAllWindows()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
