"""Scoring of a live demo run: tracker output against the camera's ground truth, matched by stamp.

ROS-free (the monitor node feeds it), so the arithmetic is unit-tested without a middleware.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from ckd_ros import boxes
from ckd_ros.tracking.overlay import draw_box, draw_style, put_text

IOU_OK = 0.5  # a frame "tracks" when IoU > 0.5
MIN_FRAC_OK = 0.8  # acceptance: >= 80% of processed frames
MIN_FPS = 15.0  # acceptance: real-time through the ROS pipeline


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x, y, w, h) boxes with the benchmarks' formula (ckd_ros.boxes); 0 for empty boxes."""
    value = boxes.iou(np.asarray([a], dtype=np.float64), np.asarray([b], dtype=np.float64))[0]
    return float(value) if np.isfinite(value) else 0.0


@dataclass
class DemoScore:
    """Collects ground truth and tracker results per image stamp (ns) inside the scoring window."""

    gt: Dict[int, np.ndarray] = field(default_factory=dict)
    gt_frame: Dict[int, int] = field(default_factory=dict)  # stamp -> the camera's scene frame index (if known)
    results: Dict[int, Optional[np.ndarray]] = field(default_factory=dict)  # None = published, no box (LOST)
    latency_ms: List[float] = field(default_factory=list)
    result_times: List[float] = field(default_factory=list)  # receive times (s), for the rate

    def add_gt(self, stamp_ns: int, box: Sequence[float], frame: Optional[int] = None) -> None:
        self.gt[stamp_ns] = np.asarray(box, np.float64)
        if frame is not None:
            self.gt_frame[stamp_ns] = int(frame)

    def add_result(self, stamp_ns: int, box: Optional[Sequence[float]], receive_s: float, latency_ms: float) -> None:
        self.results[stamp_ns] = None if box is None else np.asarray(box, np.float64)
        self.latency_ms.append(float(latency_ms))
        self.result_times.append(float(receive_s))

    def ious(self) -> np.ndarray:
        """IoU of every processed frame that has ground truth (LOST frames count as 0)."""
        out = [0.0 if box is None else iou(box, self.gt[s]) for s, box in sorted(self.results.items())
               if s in self.gt]
        return np.asarray(out, np.float64)

    def per_frame(self) -> List[Dict]:
        """One row per processed frame with ground truth, in stamp order (the rows `ious` scores):
        stamp_ns, the scene frame (None if unknown), IoU (4 decimals), lost."""
        return [{"stamp_ns": s, "frame": self.gt_frame.get(s),
                 "iou": round(0.0 if box is None else iou(box, self.gt[s]), 4), "lost": box is None}
                for s, box in sorted(self.results.items()) if s in self.gt]

    def fps(self) -> float:
        t = self.result_times
        if len(t) < 2 or t[-1] <= t[0]:
            return 0.0
        return (len(t) - 1) / (t[-1] - t[0])

    def summary(self, min_frac_ok: float = MIN_FRAC_OK, min_fps: float = MIN_FPS) -> Dict:
        ious = self.ious()
        lat = np.asarray(self.latency_ms, np.float64)
        processed = len(ious)
        frac_ok = float((ious > IOU_OK).mean()) if processed else 0.0
        fps = self.fps()
        summary = {
            "camera_frames": len(self.gt),
            "processed_frames": processed,
            "processed_fraction": processed / len(self.gt) if self.gt else 0.0,
            "fps": fps,
            "latency_ms_mean": float(lat.mean()) if lat.size else None,
            "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
            "latency_ms_p95": float(np.percentile(lat, 95)) if lat.size else None,
            "iou_mean": float(ious.mean()) if processed else 0.0,
            "frac_iou_gt_0_5": frac_ok,
            "lost_frames": sum(1 for s, b in self.results.items() if b is None and s in self.gt),
        }
        summary["pass_iou"] = processed > 0 and frac_ok >= min_frac_ok
        summary["pass_fps"] = fps >= min_fps
        summary["passed"] = bool(summary["pass_iou"] and summary["pass_fps"])
        summary["per_frame"] = self.per_frame()  # last: the long part of the JSON
        return summary


def draw_panel(rgb: np.ndarray, thermal8: Optional[np.ndarray], gt: Optional[Sequence[float]],
               result: Optional[Sequence[float]], text: str, thermal_box=None, scale: float = 0.5) -> np.ndarray:
    """One video frame (BGR): RGB with GT (green) and tracker (red) boxes | thermal with the mapped box."""
    def box(img, b, colour):
        if b is not None:
            draw_box(img, [v * scale for v in b], colour)

    left = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    box(left, gt, (0, 200, 0))
    box(left, result, (0, 0, 255))
    style = draw_style(left.shape)
    put_text(left, text, (style.margin, style.line_height), (255, 255, 255), style)
    if thermal8 is None:
        return left
    right = cv2.applyColorMap(cv2.resize(thermal8, (left.shape[1], left.shape[0]), interpolation=cv2.INTER_AREA),
                              cv2.COLORMAP_INFERNO)
    box(right, thermal_box, (255, 255, 0))
    return np.hstack([left, right])
