"""From the head's maps to an image box: Hann window, argmax decode, map back, clip (ckd-spec §2.5).

Arithmetic follows the official code's dtypes (float32 for the window and the decode, Python
floats for map-back and clip) so boxes agree to float rounding.
"""
from __future__ import annotations

import functools
import math
from typing import List, Sequence, Tuple

import numpy as np


@functools.lru_cache(maxsize=8)
def hann2d(size: int) -> np.ndarray:
    """Centred 2-D Hann window (size x size, float32): outer(h, h), h[k] = 0.5(1 - cos(2πk/(size+1))).

    k = 1..size (`hann2d(..., centered=True)` of OSTrack), not `torch.hann_window(size)`; computed
    in float32 like the reference so the values match bit for bit. Read-only (cached).
    """
    k = np.arange(1, size + 1, dtype=np.float32)
    h = np.float32(0.5) * (np.float32(1.0) - np.cos(np.float32(2 * math.pi / (size + 1)) * k))
    window = h[:, None] * h[None, :]
    window.setflags(write=False)
    return window


def maps_finite(*maps: np.ndarray) -> bool:
    """True when every value of every map is finite (no NaN/inf: an overflowed FP16 engine returns
    NaN maps, the usual Jetson symptom; such a frame must not move the track, see `Tracker.track`)."""
    return all(bool(np.isfinite(np.asarray(m)).all()) for m in maps)


def decode(
    score_map: np.ndarray, size_map: np.ndarray, offset_map: np.ndarray
) -> Tuple[np.ndarray, float, int]:
    """Windowed argmax decode (`cal_bbox` on `hann * score`).

    Maps are (1,1,F,F), (1,2,F,F), (1,2,F,F). Returns (box, score, index): box = normalised
    (cx, cy, w, h) in search-crop units (float32), score = the raw (un-windowed) score at the
    selected cell, index = flat cell index.
    """
    feat = score_map.shape[-1]
    score = np.asarray(score_map, dtype=np.float32).reshape(feat, feat)
    response = hann2d(feat) * score
    idx = int(np.argmax(response))  # first maximum, like torch.max on CPU
    iy, ix = divmod(idx, feat)
    size = np.asarray(size_map, dtype=np.float32).reshape(2, feat * feat)[:, idx]
    offset = np.asarray(offset_map, dtype=np.float32).reshape(2, feat * feat)[:, idx]
    f = np.float32(feat)
    box = np.array(
        [(np.float32(ix) + offset[0]) / f, (np.float32(iy) + offset[1]) / f, size[0], size[1]],
        dtype=np.float32,
    )
    return box, float(score.flat[idx]), idx


def map_box_back(
    box_n: np.ndarray, prev_box: Sequence[float], search_size: int, resize_factor: float
) -> List[float]:
    """Normalised (cx,cy,w,h) in the search crop -> image (x,y,w,h) around the previous centre."""
    # float32 like `pred_boxes.mean(0) * search_size / resize_factor` in the reference
    cx, cy, w, h = (
        float(v) for v in (box_n * np.float32(search_size)) / np.float32(resize_factor)
    )
    px, py, pw, ph = (float(v) for v in prev_box)
    cx_prev, cy_prev = px + 0.5 * pw, py + 0.5 * ph
    half_side = 0.5 * search_size / resize_factor
    cx_real = cx + (cx_prev - half_side)
    cy_real = cy + (cy_prev - half_side)
    return [cx_real - 0.5 * w, cy_real - 0.5 * h, w, h]


def clip_box(box: Sequence[float], height: int, width: int, margin: int = 10) -> List[float]:
    """Official `clip_box`: keep >= margin px of the box inside the image, min size margin."""
    x1, y1, w, h = box
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0, x1), width - margin)
    x2 = min(max(margin, x2), width)
    y1 = min(max(0, y1), height - margin)
    y2 = min(max(margin, y2), height)
    w = max(margin, x2 - x1)
    h = max(margin, y2 - y1)
    return [float(x1), float(y1), float(w), float(h)]
