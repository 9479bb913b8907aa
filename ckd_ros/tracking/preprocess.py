"""Crops and normalisation, bit-exact with the official CKD/OSTrack pipeline (ckd-spec §2.3, §2.4).

`sample_target` reproduces `lib/train/data/processing_utils.py::sample_target` exactly: Python
(half-to-even) `round` for the crop origin, the `+1` in the right/bottom pad, zero padding with
`cv2.copyMakeBorder` and `cv2.resize(INTER_LINEAR)`. The only differences: the padded copy is
skipped when the crop lies inside the image (resizing the view gives identical bytes), and memory is
bounded by construction: a padded canvas larger than `MAX_CANVAS_BYTES` (a box far larger than the
frame, which the official code would try to allocate) is never built; such crops are sampled
directly from the frame with the same pixel-centre mapping (`cv2.warpAffine`, bilinear, zero
border), which agrees with the padded resize to interpolation rounding.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import cv2
import numpy as np

#: largest zero-padded crop canvas (crop_sz^2 * channels * itemsize) built before resizing; a
#: 1920x1080 frame with a full-frame box needs ~100 MB for its search crop (factor 4)
MAX_CANVAS_BYTES = 160 << 20

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def crop_window(box_xywh: Sequence[float], factor: float) -> Tuple[int, int, int]:
    """(x1, y1, crop_sz) of the square crop centred on the box, as the official code computes it."""
    x, y, w, h = (float(v) for v in box_xywh)
    crop_sz = math.ceil(math.sqrt(w * h) * factor)
    if crop_sz < 1:
        raise ValueError(f"box {list(box_xywh)} is too small to crop (crop size {crop_sz} px)")
    # Python's round is half-to-even: 6.5 -> 6, -5.5 -> -6 (the official behaviour).
    x1 = round(x + 0.5 * w - crop_sz * 0.5)
    y1 = round(y + 0.5 * h - crop_sz * 0.5)
    return x1, y1, crop_sz


def pads(x1: int, y1: int, crop_sz: int, height: int, width: int) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding; note the official `+1` on the right/bottom."""
    x2, y2 = x1 + crop_sz, y1 + crop_sz
    left = max(0, -x1)
    right = max(x2 - width + 1, 0)
    top = max(0, -y1)
    bottom = max(y2 - height + 1, 0)
    return top, bottom, left, right


def sample_target(
    im: np.ndarray, box_xywh: Sequence[float], factor: float, output_sz: int
) -> Tuple[np.ndarray, float]:
    """Square crop of side ceil(sqrt(w*h)*factor) around the box, zero-padded, resized to output_sz.

    Works for HxWxC and HxW uint8 images (channels are resized independently, so cropping a
    one-channel thermal image and replicating it afterwards gives the same bytes). Returns
    (crop, resize_factor) with resize_factor = output_sz / crop_sz.
    """
    height, width = im.shape[:2]
    x1, y1, crop_sz = crop_window(box_xywh, factor)
    top, bottom, left, right = pads(x1, y1, crop_sz, height, width)
    x2, y2 = x1 + crop_sz, y1 + crop_sz
    r0, r1 = y1 + top, y2 - bottom
    c0, c1 = x1 + left, x2 - right
    resize_factor = output_sz / crop_sz
    channels = im.shape[2] if im.ndim == 3 else 1
    if crop_sz * crop_sz * channels * im.dtype.itemsize > MAX_CANVAS_BYTES:
        return _sample_warped(im, x1, y1, crop_sz, output_sz, bottom > 0, right > 0), resize_factor
    if r0 < 0 or c0 < 0 or r1 <= r0 or c1 <= c0 or r1 > height or c1 > width:
        # The crop misses the image entirely (only possible for boxes outside the frame, which
        # the tracker rejects/clips). The official code would slice with negative indices here.
        shape = (output_sz, output_sz) + im.shape[2:]
        return np.zeros(shape, dtype=im.dtype), resize_factor
    roi = im[r0:r1, c0:c1]
    if top or bottom or left or right:
        roi = cv2.copyMakeBorder(roi, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    crop = cv2.resize(roi, (output_sz, output_sz), interpolation=cv2.INTER_LINEAR)
    if crop.ndim == 2 and im.ndim == 3:  # cv2 drops a trailing 1-channel axis
        crop = crop[:, :, None]
    return crop, resize_factor


def _sample_warped(im: np.ndarray, x1: int, y1: int, crop_sz: int, output_sz: int, drop_last_row: bool,
                   drop_last_col: bool) -> np.ndarray:
    """The crop of `sample_target` without the padded canvas: output pixel u samples canvas position
    (u + 0.5) * crop_sz / output_sz - 0.5, i.e. frame position x1 + that (what cv2.resize does),
    bilinear with zero outside. Memory: the output only. The official `+1` pad (the last frame
    row/column becomes padding when the crop reaches past it) is kept."""
    src = im[: im.shape[0] - 1 if drop_last_row else im.shape[0], : im.shape[1] - 1 if drop_last_col else im.shape[1]]
    if src.shape[0] == 0 or src.shape[1] == 0:
        return np.zeros((output_sz, output_sz) + im.shape[2:], dtype=im.dtype)
    s = crop_sz / output_sz
    m = np.array([[s, 0.0, x1 + 0.5 * s - 0.5], [0.0, s, y1 + 0.5 * s - 0.5]], dtype=np.float64)
    crop = cv2.warpAffine(np.ascontiguousarray(src), m, (output_sz, output_sz),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if crop.ndim == 2 and im.ndim == 3:
        crop = crop[:, :, None]
    return crop


def _build_lut() -> np.ndarray:
    # Same float32 operations, same order as the official Preprocessor: (v/255 - mean)/std.
    # A per-value table gives identical numbers at a fraction of the per-pixel cost.
    v = np.arange(256, dtype=np.float32)[None, :]
    return ((v / np.float32(255.0) - IMAGENET_MEAN[:, None]) / IMAGENET_STD[:, None]).astype(np.float32)


_LUT = _build_lut()  # (3, 256)
_LUT_ROWS = [np.ascontiguousarray(_LUT[c].reshape(1, 256)) for c in range(3)]


def normalize(crop: np.ndarray) -> np.ndarray:
    """uint8 crop (SxSx3 RGB, or SxS / SxSx1 gray = three equal channels) -> (1,3,S,S) float32."""
    if crop.dtype != np.uint8:
        raise ValueError(f"crops must be uint8, got {crop.dtype}")
    if crop.ndim == 3 and crop.shape[2] == 1:
        crop = crop[:, :, 0]
    planes = [crop] * 3 if crop.ndim == 2 else cv2.split(crop)
    out = np.empty((1, 3) + crop.shape[:2], dtype=np.float32)
    for c in range(3):  # cv2.LUT on contiguous planes: ~10x faster than numpy fancy indexing
        out[0, c] = cv2.LUT(planes[c], _LUT_ROWS[c])
    return out

