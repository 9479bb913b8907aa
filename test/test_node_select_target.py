"""The target picker driven through its event handlers (no window): frozen frames however long the
drag, picture state and age, the node's real answers, thermal images, scaling overlays, no display."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ckd_ros.node import select_target
from ckd_ros.node.overlay import rgb_overlay, thermal_overlay
from ckd_ros.node.select_target import KEYS, STALE_S, Selection, TargetSelector, parse_args
from ckd_ros.tracking.overlay import draw_style, wrap_text


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def picker():
    clock = Clock()
    return TargetSelector("/robot/ckd_tracker", "/robot/ckd_tracker/debug/image", clock), clock


def test_long_drag_keeps_the_frozen_frame_and_its_stamp():
    clock, pins = Clock(), []
    sel = TargetSelector("/robot/ckd_tracker", "/robot/ckd_tracker/debug/image", clock,
                         on_freeze=lambda stamp, frame: pins.append((stamp, frame)))
    frame_a = np.zeros((240, 320, 3), np.uint8)
    assert sel.on_mouse(cv2.EVENT_LBUTTONDOWN, 10, 10) is None and "no image yet" in sel.status
    sel.on_frame(frame_a, (5, 100), "camera_rgb")
    sel.on_mouse(cv2.EVENT_LBUTTONDOWN, 10, 10)
    for k in range(50):  # 10 s of drawing while new frames keep arriving
        clock.t += 0.2
        sel.on_frame(np.full((240, 320, 3), 7, np.uint8), (6 + k, 0), "camera_rgb")
        sel.on_mouse(cv2.EVENT_MOUSEMOVE, 40 + k, 30)
    state, line = sel.picture_state()
    assert state == "FROZEN" and "10.0 s old" in line
    assert pins == [((5, 100), "camera_rgb")]  # pinned once, when it froze
    view = sel.view()
    assert view[120, 200].tolist() == [0, 0, 0]  # still the frozen frame, not the newer ones
    assert view[30, 60].tolist() == [0, 255, 255]  # the drag box
    chosen = sel.on_mouse(cv2.EVENT_LBUTTONUP, 90, 70)
    assert chosen == Selection((10, 10, 80, 60), (5, 100), "camera_rgb", False)
    assert "RGB box [10, 10, 80, 60] on frame 'camera_rgb' at 5.000000100" in sel.status
    assert sel.view()[120, 200].tolist() == [7, 7, 7]  # live again
    sel.on_mouse(cv2.EVENT_LBUTTONDOWN, 10, 10)
    assert sel.on_mouse(cv2.EVENT_LBUTTONUP, 12, 11) is None and "too small" in sel.status


def test_picture_state_and_age_say_what_to_do():
    sel, clock = picker()
    clock.t += 7.0
    state, line = sel.picture_state()
    assert state == "NO IMAGE" and "for 7 s" in line and "ros2 lifecycle get /robot/ckd_tracker" in line
    blank = sel.view()
    assert blank.shape == (360, 640, 3) and blank.max() > 0  # the explanation is drawn, not a black window
    sel.on_frame(np.full((120, 160, 3), 200, np.uint8), (1, 0), "camera_rgb")
    clock.t += 0.5
    assert sel.picture_state() == ("LIVE", "LIVE (0.5 s old)")
    clock.t += STALE_S + 10
    state, line = sel.picture_state()
    assert state == "STALE" and "12 s old" in line and "stopped" in line
    assert sel.view()[60, 80].max() < 100  # dimmed: it does not look live


def test_answers_are_the_nodes_and_shown_in_full():
    sel, _ = picker()
    sel.on_frame(np.zeros((120, 160, 3), np.uint8), (1, 0), "camera_rgb")
    refusal = ("stamp 12.000000000 not in the frame cache (cached RGB stamps 13.1 .. 15.1; "
               "tracking.init_cache_s sets how far back); use stamp 0 for the newest frame")
    shown = sel.on_answer("set", False, refusal)
    assert shown.startswith("set_target refused: " + refusal)
    assert "ros2 param set /robot/ckd_tracker tracking.init_cache_s" in shown
    assert sel.on_answer("clear", False, "node inactive") == "clear_target refused: node inactive"
    assert sel.on_answer("clear", True, "cleared") == "target cleared"
    sel.on_answer("pin", True, "pinned the rgb frame rgb 1.0 / thermal 1.0 for 60 s")
    assert sel.status == "target cleared"  # a successful pin keeps the drag quiet
    sel.on_answer("pin", False, "stamp 1.0 is no longer cached")
    assert sel.status == "pin_frame refused: stamp 1.0 is no longer cached"
    sel.on_answer("set", False, refusal)
    style = draw_style((120, 160))
    lines = wrap_text(sel.status, 160 - 2 * style.margin, style)
    assert " ".join(lines) == sel.status and len(lines) > 3  # wrapped, nothing cut off
    for text in lines:
        assert cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, style.font_scale, style.text_thickness)[0][0] \
            <= 160 - 2 * style.margin or " " not in text


def test_thermal_selection_is_reported_as_thermal():
    sel, _ = picker()
    sel.on_frame(np.zeros((120, 160, 3), np.uint8), (3, 0), "camera_thermal", thermal=True)
    sel.on_mouse(cv2.EVENT_LBUTTONDOWN, 10, 20)
    chosen = sel.on_mouse(cv2.EVENT_LBUTTONUP, 50, 60)
    assert chosen.thermal and chosen.frame_id == "camera_thermal"
    assert sel.status.startswith("set_target: thermal box [10, 20, 40, 40] on frame 'camera_thermal'")


def test_overlay_sizes_scale_with_the_image():
    small, large = draw_style((120, 160)), draw_style((1080, 1920))
    assert small.font_scale < large.font_scale and small.line_thickness < large.line_thickness
    text_w = cv2.getTextSize("TRACKING  30.0 fps", cv2.FONT_HERSHEY_SIMPLEX, small.font_scale,
                             small.text_thickness)[0][0]
    assert text_w + small.margin <= 160  # fits a 160x120 thermal image
    # shown at 1/3 on a 640-px-wide window, 1080p text is still ~ as tall as 0.5 font on a native image
    assert large.font_scale / 3 >= 0.3
    img = rgb_overlay(np.zeros((1080, 1920, 3), np.uint8), (400, 300, 200, 100), 0.9, "tracking", 10.0)
    ys, xs = np.nonzero(img[:, 390:410, 1] == 255)
    assert (xs.max() - xs.min()) + 1 >= large.line_thickness  # box edge drawn with the scaled width
    tiny = thermal_overlay(np.zeros((120, 160, 3), np.uint8), None, "tracking")
    assert tiny[:, 120:, 1].max() == 0  # the state label stays in the left part of a 160-px image


def test_help_lists_the_keys(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "q, Esc or the window's close button = quit" in out and "c = clear the target" in out
    assert KEYS.startswith("keys: drag")


def test_no_display_prints_the_service_call_and_exits_nonzero(monkeypatch, capsys):
    pytest.importorskip("rclpy", reason="rclpy not on the path")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert select_target.main(["select_target", "--tracker", "/robot/ckd_tracker"]) == 2
    err = capsys.readouterr().err
    assert "no display" in err
    assert "ros2 service call /robot/ckd_tracker/set_target sensor_msgs/srv/SetCameraInfo" in err
    assert "ros2 service call /robot/ckd_tracker/clear_target std_srvs/srv/Trigger" in err


def test_headless_opencv_is_detected_without_aborting(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":97")  # a display name but no X server there (and/or a headless OpenCV)
    problem, screen = select_target.probe_display()
    assert "OpenCV cannot open a window" in problem and screen is None


def test_window_fits_image_and_screen():
    assert select_target.window_size((1080, 1920, 3), 1.0, "1280x800") == (1280, 720)
    assert select_target.window_size((1080, 1920, 3), 1.0, "1280x800", (1024, 768)) == (921, 518)
    assert select_target.window_size((120, 160, 3), 4.0, "1280x800") == (640, 480)  # small thermal: scaled up
    assert select_target.window_size((512, 640, 3), 0.5, "bad") == (320, 256)


@pytest.mark.ros
def test_raw_thermal_and_request_fields():
    from ckd_ros.frames.ros_image import NumpyImageConverter, array_to_image_msg

    raw = np.full((120, 160), 7000, np.uint16)
    raw[40:60, 50:80] = 9000
    bgr, thermal = select_target.to_display(array_to_image_msg(raw, "mono16"), NumpyImageConverter())
    assert thermal and bgr.shape == (120, 160, 3)
    assert bgr[50, 60].tolist() == [255, 255, 255] and bgr[5, 5].max() == 0
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 200
    bgr, thermal = select_target.to_display(array_to_image_msg(rgb, "rgb8"), NumpyImageConverter())
    assert not thermal and bgr[0, 0].tolist() == [0, 0, 200]
    overlay = array_to_image_msg(np.zeros((10, 12, 3), np.uint8), "bgr8")  # the tracker's thermal overlay
    assert select_target.to_display(overlay, NumpyImageConverter(), "/ckd_tracker/debug/thermal_image")[1]
    pin = select_target.build_pin_request((7, 8)).camera_info.header.stamp
    assert (pin.sec, pin.nanosec) == (7, 8)
    req = select_target.build_request(Selection((10, 20, 30, 40), (7, 8), "camera_thermal", True))
    info = req.camera_info
    assert (info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height) == (10, 20, 30, 40)
    assert (info.header.stamp.sec, info.header.stamp.nanosec, info.header.frame_id) == (7, 8, "camera_thermal")
