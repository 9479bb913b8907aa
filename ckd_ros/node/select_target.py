"""`ros2 run ckd_ros select_target`: drag a box on the tracker's overlay, it becomes the target.

Shows an image topic (default `<tracker>/debug/image`; any RGB or thermal image works, raw 16-bit
thermal included) in an OpenCV window. Pressing the mouse button freezes the picture, dragging draws
the box, releasing calls `<tracker>/set_target` with that picture's stamp and frame_id, so the node
initialises on exactly the frame the box was drawn on and catches up. Where the tracker offers
`<tracker>/pin_frame`, the picture is pinned there when it freezes, so a drag may take any time.

Keys: drag with the left mouse button = select the target; c = clear the target; q, Esc or the
window's close button = quit. The window shows the state and age of the picture (LIVE / FROZEN /
STALE / no image) and the tracker's full answer.

The window logic (`TargetSelector`, `build_request`, `to_display`) needs no display and is unit-tested;
only `main()` opens a window (an OpenCV build with GUI support, not opencv-python-headless). Without
a display it prints how to call the service with `ros2 service call` and exits with status 2.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

from ckd_ros.tracking.overlay import draw_style, text_block

MIN_BOX_PX = 4  # smaller drags are treated as clicks (ignored)
STALE_S = 2.0  # a picture older than this is shown as STALE (node stopped, camera down)
KEYS = ("keys: drag with the left mouse button = select the target (the picture freezes while you draw); "
        "c = clear the target; q, Esc or the window's close button = quit")
THERMAL_ENCODINGS = ("mono16", "16UC1", "32FC1", "64FC1", "mono8", "8UC1")


@dataclass
class Selection:
    box: Tuple[int, int, int, int]  # x, y, w, h in image pixels
    stamp: Tuple[int, int]  # sec, nanosec of the frame the box was drawn on
    frame_id: str
    thermal: bool = False  # drawn on a thermal image (the node maps thermal pixels through the registration)

    def describe(self) -> str:
        image = "thermal" if self.thermal else "RGB"
        return f"{image} box {list(self.box)} on frame '{self.frame_id or '?'}' at {self.stamp[0]}.{self.stamp[1]:09d}"


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
    """sensor_msgs/srv/SetCameraInfo request as the tracker reads it (roi + header).

    The one place a selection becomes a call: the frozen frame is named by its stamp and frame_id.
    """
    from sensor_msgs.srv import SetCameraInfo  # noqa: PLC0415

    req = SetCameraInfo.Request()
    req.camera_info.header.stamp.sec, req.camera_info.header.stamp.nanosec = selection.stamp
    req.camera_info.header.frame_id = selection.frame_id
    x, y, w, h = selection.box
    roi = req.camera_info.roi
    roi.x_offset, roi.y_offset, roi.width, roi.height = int(x), int(y), int(w), int(h)
    return req


def build_pin_request(stamp: Tuple[int, int]):
    """sensor_msgs/srv/SetCameraInfo request for `<tracker>/pin_frame`: only header.stamp (the frozen frame)."""
    from sensor_msgs.srv import SetCameraInfo  # noqa: PLC0415

    req = SetCameraInfo.Request()
    req.camera_info.header.stamp.sec, req.camera_info.header.stamp.nanosec = stamp
    return req


def service_hint(tracker: str) -> str:
    """The two `ros2 service call` lines that do what the picker does, for `tracker` (its full name)."""
    return (f"  ros2 service call {tracker}/set_target sensor_msgs/srv/SetCameraInfo "
            "\"{camera_info: {roi: {x_offset: 100, y_offset: 80, width: 60, height: 40}}}\"\n"
            f"  ros2 service call {tracker}/clear_target std_srvs/srv/Trigger")


def to_display(msg, converter, topic: str = "") -> Tuple[np.ndarray, bool]:
    """sensor_msgs/Image -> (HxWx3 uint8 BGR to show, is_thermal). Raw thermal (mono16, 16UC1,
    32FC1, mono8) goes through the one thermal conversion (`frames.thermal.ThermalNormalizer`, minmax).
    Thermal: such an encoding, or a topic named thermal (the tracker's bgr8 `debug/thermal_image`)."""
    from ckd_ros.frames.ros_image import decode_rgb, decode_thermal  # noqa: PLC0415
    from ckd_ros.frames.thermal import ThermalNormalizer  # noqa: PLC0415

    if msg.encoding in THERMAL_ENCODINGS:
        raw, palette = decode_thermal(msg, converter)
        if palette:
            return cv2.cvtColor(raw, cv2.COLOR_RGB2BGR), True
        gray = ThermalNormalizer("minmax")(raw)
        return cv2.cvtColor(gray, cv2.COLOR_RGB2BGR), True
    return cv2.cvtColor(decode_rgb(msg, converter), cv2.COLOR_RGB2BGR), "thermal" in topic.lower()


class TargetSelector:
    """Frames in, mouse events in, a Selection out when a drag ends; `view()` is what the window shows.

    Thread-safe (the ROS thread feeds frames). Mouse coordinates are image pixels (the window is
    WINDOW_NORMAL: OpenCV maps window positions back to the image however the window is sized).
    `clock`: monotonic seconds (tests pass a fake one); `on_freeze(stamp, frame_id)`: called when a
    drag freezes a picture (the picker pins it in the tracker).
    """

    def __init__(self, tracker: str = "/ckd_tracker", topic: str = "", clock: Callable[[], float] = time.monotonic,
                 on_freeze: Optional[Callable[[Tuple[int, int], str], None]] = None) -> None:
        self.tracker, self.topic, self._clock, self._on_freeze = tracker, topic, clock, on_freeze
        self._lock = threading.Lock()
        self._latest = None  # (bgr image, stamp, frame_id, is_thermal, arrival time)
        self._frozen = None
        self._p0 = self._p1 = None
        self._started = clock()
        self.status = "drag a box around the target (c: clear, q: quit)"

    def on_frame(self, bgr: np.ndarray, stamp: Tuple[int, int], frame_id: str, thermal: bool = False) -> None:
        """A new picture (HxWx3 uint8 BGR) with its header stamp (sec, nanosec) and frame_id."""
        with self._lock:
            self._latest = (bgr, stamp, frame_id, thermal, self._clock())

    def set_status(self, text: str) -> None:
        """The bottom lines of the window (wrapped, never cut)."""
        with self._lock:
            self.status = text

    def on_answer(self, what: str, success: bool, message: str) -> str:
        """The node's real answer to set_target / clear_target, shown in full."""
        if what == "pin":  # success: the drag goes on quietly; a refusal is shown (the set_target may fail)
            if not success:
                self.set_status(f"pin_frame refused: {message}")
            return f"pin_frame: {message}"
        if what == "clear":
            text = "target cleared" if success else f"clear_target refused: {message}"
        else:
            text = ("OK: " if success else "set_target refused: ") + message
            if not success and "not in the frame cache" in message:  # a node that does not pin the frame
                text += (f". The drag took longer than the tracker keeps frames: draw faster, or "
                         f"ros2 param set {self.tracker} tracking.init_cache_s 10.0")
        self.set_status(text)
        return text

    def on_mouse(self, event: int, x: int, y: int) -> Optional[Selection]:
        """An OpenCV mouse event at image pixel (x, y); the Selection when a drag ends, else None."""
        frozen = None
        with self._lock:
            if event == cv2.EVENT_LBUTTONDOWN:
                if self._latest is None:
                    self.status = f"no image yet on {self.topic}: nothing to draw on"
                    return None
                self._frozen = frozen = self._latest  # the box belongs to this frame, however long the drag takes
                self._p0 = self._p1 = (x, y)
            elif event == cv2.EVENT_MOUSEMOVE and self._p0 is not None:
                self._p1 = (x, y)
            elif event == cv2.EVENT_LBUTTONUP and self._p0 is not None:
                frame, p0 = self._frozen, self._p0
                self._frozen = self._p0 = self._p1 = None
                img, stamp, frame_id, thermal, _ = frame
                box = box_from_points(p0, (x, y), 1.0, img.shape[1], img.shape[0])
                if box is None:
                    self.status = "box too small, drag again"
                    return None
                selection = Selection(box, stamp, frame_id, thermal)
                self.status = f"set_target: {selection.describe()} ..."
                return selection
        if frozen is not None and self._on_freeze is not None:
            self._on_freeze(frozen[1], frozen[2])
        return None

    def picture_state(self) -> Tuple[str, str]:
        """(state, one line) of the picture: NO IMAGE / LIVE / FROZEN / STALE, with its age and what to do."""
        with self._lock:
            latest, frozen = self._latest, self._frozen
        now = self._clock()
        if latest is None:
            waited = now - self._started
            return "NO IMAGE", (f"no image on {self.topic} for {waited:.0f} s: is {self.tracker} running and "
                                f"active (ros2 lifecycle get {self.tracker}), with debug.overlay true and its "
                                f"camera publishing (ros2 topic hz {self.topic})?")
        age = now - latest[4]
        if frozen is not None:
            return "FROZEN", f"FROZEN while you draw (picture {now - frozen[4]:.1f} s old): release to select"
        if age > STALE_S:
            return "STALE", (f"STALE: last picture {age:.0f} s old; the tracker or its camera stopped "
                             f"(ros2 lifecycle get {self.tracker}; ros2 topic hz {self.topic})")
        return "LIVE", f"LIVE ({age:.1f} s old)"

    def view(self) -> np.ndarray:
        """What the window shows: the frozen frame while dragging, else the newest, the drag box, the
        picture's state/age on top and the status (the tracker's answer, wrapped) at the bottom."""
        with self._lock:
            frame = self._frozen or self._latest
            p0, p1, status = self._p0, self._p1, self.status
        state, line = self.picture_state()
        if frame is None:
            img = np.zeros((360, 640, 3), np.uint8)
        else:
            img = frame[0].copy()
            if state == "STALE":
                img = (img // 3).astype(np.uint8)  # dimmed: not live
        style = draw_style(img.shape)
        colour = {"LIVE": (0, 255, 0), "FROZEN": (0, 255, 255)}.get(state, (0, 0, 255))
        # below the tracker overlay's own label line (same draw_style: same height)
        text_block(img, line, style.line_height + style.margin, colour, style)
        text_block(img, status, None, (255, 255, 255), style)
        if p0 is not None:  # on top of everything: the box being drawn is never hidden
            cv2.rectangle(img, p0, p1, (0, 255, 255), style.line_thickness)
        return img


_PROBE = """
import cv2
cv2.namedWindow('ckd_probe', cv2.WINDOW_NORMAL)
cv2.waitKey(1)
cv2.destroyAllWindows()
try:
    import tkinter
    root = tkinter.Tk()
    print('SCREEN', root.winfo_screenwidth(), root.winfo_screenheight())
    root.destroy()
except Exception:
    pass
"""


def probe_display() -> Tuple[Optional[str], Optional[Tuple[int, int]]]:
    """(why no window can open here or None, screen W x H when known). The GUI is probed in a child
    process: Qt aborts the whole process (exit 134) when it finds no display, which Python cannot
    catch. The screen size comes from tkinter where it is installed."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY / WAYLAND_DISPLAY not set)", None
    try:
        res = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the OpenCV GUI probe failed ({exc})", None
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        return f"OpenCV cannot open a window ({last[:160]})", None
    for line in res.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == "SCREEN" and fields[1].isdigit() and fields[2].isdigit():
            return None, (int(fields[1]), int(fields[2]))
    return None, None


def parse_args(argv):
    """Command line (ROS arguments removed); `--help` lists the keys."""
    parser = argparse.ArgumentParser(prog="select_target", description=__doc__.split("\n\n")[0],
                                     epilog=KEYS + ". Without a display: prints the ros2 service call and exits 2.")
    parser.add_argument("--tracker", default="/ckd_tracker", help="the tracker node's name (with namespace)")
    parser.add_argument("--image", default=None, help="image topic to show (default <tracker>/debug/image; "
                        "<tracker>/debug/thermal_image or a raw thermal topic select in thermal pixels)")
    parser.add_argument("--scale", type=float, default=1.0, help="initial window scale factor (the window "
                        "is resizable; it never starts larger than --max-window)")
    parser.add_argument("--max-window", default="1280x800", metavar="WxH",
                        help="largest initial window size (default 1280x800; never more than 90%% of the "
                             "screen where tkinter can tell its size)")
    return parser.parse_args(argv)


def window_size(shape, scale: float, max_window: str, screen: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    """Initial window W x H: the image at `scale`, shrunk (aspect kept) to fit `max_window` ('WxH')
    and 90 % of the screen when its size is known."""
    try:
        max_w, max_h = (int(v) for v in max_window.lower().split("x"))
    except ValueError:
        max_w, max_h = 1280, 800
    if screen is not None:
        max_w, max_h = min(max_w, int(screen[0] * 0.9)), min(max_h, int(screen[1] * 0.9))
    s = min(scale, max_w / shape[1], max_h / shape[0])
    return max(1, int(shape[1] * s)), max(1, int(shape[0] * s))


def main(argv=None) -> int:
    try:
        return _run(sys.argv if argv is None else argv)
    except KeyboardInterrupt:  # Ctrl-C anywhere (start-up, shutdown): no traceback
        return 0


def _run(argv: List[str]) -> int:
    import rclpy  # noqa: PLC0415
    from rclpy.executors import ExternalShutdownException  # noqa: PLC0415
    from rclpy.qos import qos_profile_sensor_data  # noqa: PLC0415
    from sensor_msgs.msg import Image  # noqa: PLC0415
    from sensor_msgs.srv import SetCameraInfo  # noqa: PLC0415
    from std_srvs.srv import Trigger  # noqa: PLC0415

    from ckd_ros.frames.ros_image import ImageConversionError, NumpyImageConverter  # noqa: PLC0415

    args = parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    tracker = args.tracker.rstrip("/")
    problem, screen = probe_display()
    if problem is not None:
        print(f"select_target: {problem}. Run it where a display is available (ssh -X, the robot's desktop), "
              f"or call the tracker's services directly:\n{service_hint(tracker)}", file=sys.stderr)
        return 2
    rclpy.init(args=argv)
    node = rclpy.create_node(f"select_target_{uuid.uuid4().hex[:8]}")  # anonymous: several pickers may run
    topic = args.image or f"{tracker}/debug/image"
    pending: List[Tuple[str, object]] = []
    pin_cli = node.create_client(SetCameraInfo, f"{tracker}/pin_frame")

    def pin(stamp, _frame_id) -> None:  # trackers without ~/pin_frame: the frame cache decides
        if pin_cli.service_is_ready():
            pending.append(("pin", pin_cli.call_async(build_pin_request(stamp))))

    selector = TargetSelector(tracker, topic, on_freeze=pin)
    converter = NumpyImageConverter()

    def on_image(msg):
        try:
            bgr, thermal = to_display(msg, converter, topic)
        except (ImageConversionError, ValueError) as exc:
            node.get_logger().warning(f"{topic}: {exc}", throttle_duration_sec=5.0)
            return
        selector.on_frame(bgr, (msg.header.stamp.sec, msg.header.stamp.nanosec), msg.header.frame_id, thermal)

    node.create_subscription(Image, topic, on_image, qos_profile_sensor_data)
    set_cli = node.create_client(SetCameraInfo, f"{tracker}/set_target")
    clear_cli = node.create_client(Trigger, f"{tracker}/clear_target")

    def call(what: str, client, request) -> None:
        if not client.service_is_ready():
            selector.set_status(f"{client.srv_name} not available: is {tracker} running? (ros2 node list)")
            return
        pending.append((what, client.call_async(request)))

    def on_mouse(event, x, y, _flags, _param):
        selection = selector.on_mouse(event, x, y)
        if selection is not None:
            call("set", set_cli, build_request(selection))

    window = f"select_target: {topic}"
    cv2.namedWindow(window, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)  # no zoom/pan
    cv2.setMouseCallback(window, on_mouse)
    node.get_logger().info(f"showing {topic}; drag a box to call {tracker}/set_target. {KEYS}")
    sized = None
    try:
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.01)
            for what, fut in [p for p in pending if p[1].done()]:
                pending.remove((what, fut))
                res = fut.result()
                ok, message = (res.success, res.message if what == "clear" else res.status_message)
                node.get_logger().info(selector.on_answer(what, ok, message))
            img = selector.view()
            if sized != img.shape[:2]:
                cv2.resizeWindow(window, *window_size(img.shape, args.scale, args.max_window, screen))
                sized = img.shape[:2]
            cv2.imshow(window, img)
            key = cv2.waitKey(10) & 0xFF
            if key in (ord("q"), 27) or cv2.getWindowProperty(window, cv2.WND_PROP_VISIBLE) < 1:
                break
            if key == ord("c"):
                selector.set_status("clear_target ...")
                call("clear", clear_cli, Trigger.Request())
    except ExternalShutdownException:  # Ctrl-C caught by rclpy's signal handler during spin_once
        pass
    finally:
        cv2.destroyAllWindows()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
