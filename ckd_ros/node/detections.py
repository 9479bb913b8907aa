"""vision_msgs/Detection2DArray from a tracking result (header = the RGB image's header)."""
from __future__ import annotations

from typing import Optional, Sequence

from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose


def build_detections(header, box_xywh: Optional[Sequence[float]], score: float, label: str,
                     track_id: str) -> Detection2DArray:
    """One Detection2D for a box, none when `box_xywh` is None (LOST)."""
    array = Detection2DArray()
    array.header = header
    if box_xywh is None:
        return array
    x, y, w, h = (float(v) for v in box_xywh)
    det = Detection2D()
    det.header = header
    det.id = track_id
    center = det.bbox.center
    # vision_msgs >= 4 (Humble, Jazzy) nests the centre in `position`; 3.x had x/y on Pose2D itself
    target = center.position if hasattr(center, "position") else center
    target.x, target.y = x + w / 2.0, y + h / 2.0
    det.bbox.size_x, det.bbox.size_y = w, h
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = label
    hyp.hypothesis.score = float(score)
    det.results.append(hyp)
    array.detections.append(det)
    return array


def detection_box(det) -> tuple:
    """(x, y, w, h) back from a Detection2D (tests, select_target)."""
    center = det.bbox.center
    pos = center.position if hasattr(center, "position") else center
    w, h = det.bbox.size_x, det.bbox.size_y
    return (pos.x - w / 2.0, pos.y - h / 2.0, w, h)
