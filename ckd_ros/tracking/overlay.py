"""Side-by-side RGB | thermal overlay with box, score and state (for `ckd track --video`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from ckd_ros.errors import CKDError
from ckd_ros.tracking.tracker import TrackState

# BGR colours per state
COLOURS = {TrackState.TRACKING: (0, 220, 0), TrackState.LOST: (0, 0, 255), TrackState.IDLE: (200, 200, 200)}


@dataclass(frozen=True)
class DrawStyle:
    """Font scale, text/line thicknesses and line height (px) for an image of a given size."""

    font_scale: float
    text_thickness: int
    line_thickness: int
    line_height: int
    margin: int


def draw_style(shape) -> DrawStyle:
    """The one rule for overlay sizes: proportional to the image's shorter side (a 720-px side gives
    font 1.0 and 3-px boxes), so text stays legible on 1920x1080 shown small and fits on 160x120."""
    side = float(min(shape[0], shape[1]))
    font = min(max(side / 720.0, 0.3), 2.5)
    line = max(2, int(round(side / 240.0)))
    text = max(1, int(round(font * 2.0)))
    return DrawStyle(font, text, line, int(round(30 * font)) + 2, max(2, int(round(side / 80.0))))


def put_text(img: np.ndarray, text: str, org, colour, style: Optional[DrawStyle] = None) -> None:
    """Text with a dark outline at `org` (baseline left), sized by `draw_style`."""
    style = style or draw_style(img.shape)
    org = (int(org[0]), int(org[1]))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, style.font_scale, (0, 0, 0), style.text_thickness + 2,
                cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, style.font_scale, colour, style.text_thickness, cv2.LINE_AA)


def text_block(img: np.ndarray, text: str, top: Optional[int], colour, style: Optional[DrawStyle] = None,
               bottom: Optional[int] = None) -> int:
    """`text` wrapped to the image width on a dark translucent band, starting at row `top` (or ending
    at row `bottom`); returns the row below the band. For status lines drawn over busy pictures."""
    style = style or draw_style(img.shape)
    lines = wrap_text(text, img.shape[1] - 2 * style.margin, style)
    height = style.line_height * len(lines) + style.margin
    y0 = top if top is not None else max(0, (bottom if bottom is not None else img.shape[0]) - height)
    y1 = min(img.shape[0], y0 + height)
    band = img[y0:y1]
    band[:] = (band.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken 60 %
    y = y0 + style.line_height - style.margin // 2
    for line in lines:
        put_text(img, line, (style.margin, y), colour, style)
        y += style.line_height
    return y1


def wrap_text(text: str, width_px: int, style: DrawStyle) -> list:
    """Split `text` into lines that fit `width_px` at `style` (whole words; long words are cut)."""
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        w = cv2.getTextSize(trial, cv2.FONT_HERSHEY_SIMPLEX, style.font_scale, style.text_thickness)[0][0]
        if w <= width_px or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def draw_box(img_bgr: np.ndarray, box_xywh: Sequence[float], colour, thickness: Optional[int] = None) -> None:
    """Rectangle (x, y, w, h in pixels) in place; thickness from `draw_style` unless given."""
    thickness = draw_style(img_bgr.shape).line_thickness if thickness is None else thickness
    x, y, w, h = (float(v) for v in box_xywh)
    cv2.rectangle(img_bgr, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))),
                  colour, thickness)


def compose(rgb: np.ndarray, tir: np.ndarray, box_xywh: Optional[Sequence[float]], score: float,
            state: TrackState, frame_idx: int) -> np.ndarray:
    """BGR frame of size (H, 2W): RGB left, (registered) thermal right, same box on both."""
    left = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    right = cv2.cvtColor(tir, cv2.COLOR_GRAY2BGR) if tir.ndim == 2 else cv2.cvtColor(tir, cv2.COLOR_RGB2BGR)
    canvas = np.concatenate([left, right], axis=1)
    colour = COLOURS[state]
    if box_xywh is not None:
        x, y, w, h = box_xywh
        draw_box(canvas, (x, y, w, h), colour)
        draw_box(canvas, (x + rgb.shape[1], y, w, h), colour)
    style = draw_style(rgb.shape)
    put_text(canvas, f"#{frame_idx}  {state.name}  score {score:.3f}", (style.margin, style.line_height), colour,
             style)
    return canvas


class OverlayWriter:
    """mp4v writer of composed frames; opened lazily on the first frame (its size is known then)."""

    def __init__(self, path: str, fps: float = 30.0) -> None:
        self.path = str(path)
        self.fps = fps
        self._writer = None

    def write(self, frame_bgr: np.ndarray) -> None:
        if self._writer is None:
            height, width = frame_bgr.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(self.path, fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise CKDError(f"cannot write video {self.path} "
                               "(mp4v codec unavailable or folder not writable)")
        self._writer.write(frame_bgr)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
