"""Box arithmetic shared by every protocol. Boxes are (N, 4) float arrays `x y w h`, (x, y) top-left."""
from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np

from ckd_ros.errors import BoxError

#: a box entering the system may be at most this many frame widths wide and frame heights high
#: (partly outside the frame is fine; the template/search crops scale with the box, see
#: `tracking.preprocess.MAX_CANVAS_BYTES` for the memory bound of a crop)
MAX_BOX_TO_FRAME = 2.0


def round_half_away(values: np.ndarray) -> np.ndarray:
    """MATLAB `round`: halves go away from zero (104.5 -> 105, -0.5 -> -1); numpy rounds them to even."""
    values = np.asarray(values, dtype=np.float64)
    mag = np.abs(values)
    floor = np.floor(mag)
    # mag - floor is exact in floating point, so the 0.5 comparison has no rounding error
    return np.copysign(floor + (mag - floor >= 0.5), values)


def corners_to_ltwh(corners: np.ndarray) -> np.ndarray:
    """8-column results (x1 y1 .. x4 y4: top-left, top-right, bottom-right, bottom-left), as MATLAB
    `corner2rect` converts them: round([x1, y1, x2 - x1, y3 - y1]), rounding after the differences."""
    c = np.asarray(corners, dtype=np.float64)
    return round_half_away(np.stack([c[:, 0], c[:, 1], c[:, 2] - c[:, 0], c[:, 5] - c[:, 1]], axis=1))


def ltrb_to_ltwh(ltrb: np.ndarray) -> np.ndarray:
    """GTOT ground truth `x1 y1 x2 y2` -> `x y w h` with w = x2 - x1 (no +1, as the GTOT toolkit)."""
    b = np.asarray(ltrb, dtype=np.float64)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def polygon_to_ltwh(points: np.ndarray) -> np.ndarray:
    """8-number polygon ground truth -> its axis-aligned bounding box (min/max), as the CKD loaders do."""
    p = np.asarray(points, dtype=np.float64)
    xs, ys = p[:, 0::2], p[:, 1::2]
    x0, y0 = xs.min(axis=1), ys.min(axis=1)
    return np.stack([x0, y0, xs.max(axis=1) - x0, ys.max(axis=1) - y0], axis=1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU (MATLAB calcRectInt; its -1/+1 cancel). 0/0 and NaN inputs give NaN, which fails
    every `>` threshold test, as in MATLAB."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        iw = np.maximum(0.0, np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]))
        ih = np.maximum(0.0, np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]))
        inter = iw * ih
        return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


def centre_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of the centres (x + w/2, y + h/2); NaN when either box has NaN."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    dx = (a[:, 0] + a[:, 2] / 2) - (b[:, 0] + b[:, 2] / 2)
    dy = (a[:, 1] + a[:, 3] / 2) - (b[:, 1] + b[:, 3] / 2)
    return np.sqrt(dx * dx + dy * dy)


def check_box(box_xywh: Sequence[float], width: int, height: int, what: str = "box") -> List[float]:
    """The one check for every box that enters the system (CLI `--init`, dataset `init.txt` / first
    ground-truth row, `~/set_target` through `Tracker.initialize`).

    `box_xywh`: 4 numbers x, y (top-left), w, h in pixels of a `width` x `height` frame. Returns them
    as Python floats. Raises `BoxError` (one line) unless the box is finite, has w, h > 0, overlaps
    the frame (positive intersection area) and is at most `MAX_BOX_TO_FRAME` times the frame's width
    and height.
    """
    try:
        box = [float(v) for v in np.asarray(box_xywh, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError):
        raise BoxError(f"{what} must be 4 numbers x, y, w, h, got {box_xywh!r}") from None
    if len(box) != 4:
        raise BoxError(f"{what} must be 4 numbers x, y, w, h (pixels), got {len(box)} values")
    x, y, w, h = box
    shown = "[" + ", ".join(f"{v:g}" for v in box) + "]"
    if not all(math.isfinite(v) for v in box):
        raise BoxError(f"{what} {shown} contains NaN or inf; give finite pixel values x, y, w, h")
    if w <= 0 or h <= 0:
        raise BoxError(f"{what} {shown} has zero or negative size; w and h must be > 0 pixels")
    if not (x < width and y < height and x + w > 0 and y + h > 0):
        raise BoxError(f"{what} {shown} is outside the {width}x{height} image; boxes are x, y (top-left), "
                       "w, h in RGB pixels and must overlap the frame")
    if w > MAX_BOX_TO_FRAME * width or h > MAX_BOX_TO_FRAME * height:
        raise BoxError(f"{what} {shown} is larger than {MAX_BOX_TO_FRAME:g}x the {width}x{height} frame; "
                       "check the box units (pixels, x y w h, not x1 y1 x2 y2 or normalised values)")
    return box
