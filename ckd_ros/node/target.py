"""`~/set_target` request handling without ROS state: parse the SetCameraInfo request, check the box
against the frame it was drawn on, map thermal-pixel boxes into RGB pixels.

A standard service type (sensor_msgs/srv/SetCameraInfo) carries the box: `roi` = x_offset, y_offset,
width, height in pixels; `header.stamp` = the frame it was drawn on (zero: newest);
`header.frame_id` = which image's pixels (empty or RGB frame: RGB; thermal frame: thermal).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ckd_ros.errors import BoxError


class TargetError(BoxError):
    """The request cannot be served; the message goes back in `status_message` (stage 'target')."""


@dataclass
class TargetRequest:
    box: Tuple[float, float, float, float]  # x, y, w, h in the pixels of `frame_id`
    stamp_ns: int  # 0 = newest cached pair
    frame_id: str


@dataclass
class FrameInfo:
    width: int
    height: int
    frame_id: str


def parse_request(camera_info) -> TargetRequest:
    roi = camera_info.roi
    stamp = camera_info.header.stamp
    box = (float(roi.x_offset), float(roi.y_offset), float(roi.width), float(roi.height))
    return TargetRequest(box, int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec), camera_info.header.frame_id)


def _check_inside(box, info: FrameInfo, what: str) -> None:
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise TargetError(f"zero-size box (width {w:g}, height {h:g}): roi.width and roi.height must be > 0")
    if x + w > info.width:
        raise TargetError(f"box x {x:g}..{x + w:g} exceeds the {what} image width {info.width} "
                          f"(frame '{info.frame_id}')")
    if y + h > info.height:
        raise TargetError(f"box y {y:g}..{y + h:g} exceeds the {what} image height {info.height} "
                          f"(frame '{info.frame_id}')")


def box_to_rgb(req: TargetRequest, rgb: FrameInfo, thermal: FrameInfo, registration) -> Tuple[np.ndarray, str]:
    """The request's box in RGB pixels and the name of the frame it was given in ('rgb' or 'thermal')."""
    frame = req.frame_id
    if frame in ("", rgb.frame_id):
        _check_inside(req.box, rgb, "RGB")
        return np.asarray(req.box, dtype=np.float64), "rgb"
    if frame != thermal.frame_id:
        raise TargetError(f"header.frame_id '{frame}' is neither the RGB frame '{rgb.frame_id}' nor the "
                          f"thermal frame '{thermal.frame_id}' (empty = RGB pixels)")
    _check_inside(req.box, thermal, "thermal")
    box = np.asarray(registration.box_thermal_to_rgb(req.box), dtype=np.float64)
    # the thermal field of view may be wider than the RGB one: keep the part inside the RGB image
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[0] + box[2], float(rgb.width)), min(box[1] + box[3], float(rgb.height))
    if x1 - x0 < 1.0 or y1 - y0 < 1.0:
        raise TargetError(f"thermal box {list(req.box)} maps to RGB box {np.round(box, 1).tolist()}, which is "
                          f"outside the {rgb.width}x{rgb.height} RGB image (check registration.homography)")
    return np.array([x0, y0, x1 - x0, y1 - y0]), "thermal"
