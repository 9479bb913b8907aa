"""Debug overlays (bgr8): RGB with box/score/state/fps, and false-colour thermal with the box in thermal pixels."""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from ckd_ros.tracking.overlay import draw_style, put_text

COLOURS = {"tracking": (0, 255, 0), "lost": (0, 0, 255), "idle": (200, 200, 200)}  # BGR


def _box(img: np.ndarray, box: Sequence[float], colour, dashed: bool = False) -> None:
    x, y, w, h = (float(v) for v in box)
    p0 = (int(round(x)), int(round(y)))
    p1 = (int(round(x + w)), int(round(y + h)))
    style = draw_style(img.shape)
    if not dashed:
        cv2.rectangle(img, p0, p1, colour, style.line_thickness, cv2.LINE_AA)
        return
    dash = 6 * style.line_thickness
    # LOST: the box the search is held at, dashed so it is not mistaken for a detection
    corners = [p0, (p1[0], p0[1]), p1, (p0[0], p1[1])]
    for a, b in zip(corners, corners[1:] + corners[:1]):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for t0 in range(0, length, 2 * dash):
            t1 = min(t0 + dash, length)
            s = (a[0] + (b[0] - a[0]) * t0 // max(length, 1), a[1] + (b[1] - a[1]) * t0 // max(length, 1))
            e = (a[0] + (b[0] - a[0]) * t1 // max(length, 1), a[1] + (b[1] - a[1]) * t1 // max(length, 1))
            cv2.line(img, s, e, colour, style.line_thickness, cv2.LINE_AA)


def rgb_overlay(rgb: np.ndarray, box: Optional[Sequence[float]], score: Optional[float], state: str,
                fps: float, label: str = "") -> np.ndarray:
    """HxWx3 RGB -> annotated HxWx3 BGR (a copy)."""
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    colour = COLOURS.get(state, COLOURS["idle"])
    style = draw_style(img.shape)
    if box is not None:
        _box(img, box, colour, dashed=state == "lost")
        if score is not None:
            x, y = int(box[0]), int(box[1])
            put_text(img, f"{label} {score:.2f}".strip(), (max(x, 2), max(y - style.margin, style.line_height)),
                     colour, style)
    put_text(img, f"{state.upper()}  {fps:.1f} fps", (style.margin, style.line_height), colour, style)
    return img


def thermal_overlay(tir8: np.ndarray, box_thermal: Optional[Sequence[float]], state: str) -> np.ndarray:
    """Normalised thermal (HxW or HxWx3 uint8, thermal pixels) -> false-colour BGR with the box."""
    gray = tir8[:, :, 0] if tir8.ndim == 3 else tir8
    img = cv2.applyColorMap(np.ascontiguousarray(gray), cv2.COLORMAP_INFERNO)
    colour = COLOURS.get(state, COLOURS["idle"])
    if box_thermal is not None:
        _box(img, box_thermal, colour, dashed=state == "lost")
    style = draw_style(img.shape)
    put_text(img, state.upper(), (style.margin, style.line_height), colour, style)
    return img
