"""Side-by-side RGB | thermal overlay with box, score and state (for `ckd track --video`)."""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from ckd_ros.errors import CKDError
from ckd_ros.tracking.tracker import TrackState

# BGR colours per state
COLOURS = {TrackState.TRACKING: (0, 220, 0), TrackState.LOST: (0, 0, 255), TrackState.IDLE: (200, 200, 200)}


def draw_box(img_bgr: np.ndarray, box_xywh: Sequence[float], colour, thickness: int = 2) -> None:
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
    text = f"#{frame_idx}  {state.name}  score {score:.3f}"
    scale = max(0.4, rgb.shape[0] / 720.0)
    cv2.putText(canvas, text, (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3,
                cv2.LINE_AA)
    cv2.putText(canvas, text, (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1,
                cv2.LINE_AA)
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
