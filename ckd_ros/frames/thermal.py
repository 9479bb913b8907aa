"""Thermal frames as robots deliver them -> the 8-bit gray (3 equal channels) CKD was trained on.

Inputs: 8-bit gray (mono8), 16-bit raw/radiometric counts (mono16 / 16UC1), 32/64-bit float
temperatures (32FC1) and 8-bit colour palettes (HxWx3, RGB order; converted to gray). Methods:

* `minmax`     - stretch [min, max] of the frame to [0, 255] (AGC);
* `percentile` - stretch [p_lo, p_hi] percentiles (robust to a few hot/cold pixels);
* `fixed`      - stretch a fixed `value_range=(lo, hi)` given in the input's units;
* `none`       - 8-bit input only, used as is (benchmark parity with the official code).

Non-finite pixels (NaN / inf) are treated as the low end of the range (black, white with
`invert`) and counted in `last_nonfinite` so a caller can warn.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

METHODS = ("minmax", "percentile", "fixed", "none")


def _pair(value, name: str) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers (lo, hi), got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got ({lo}, {hi})")
    if not lo < hi:
        raise ValueError(f"{name} needs lo < hi, got ({lo}, {hi})")
    return lo, hi


def _hist_percentiles(img: np.ndarray, qs: Sequence[float]) -> Tuple[float, float]:
    """np.percentile(img, qs) (linear method) for uint8/uint16 via a histogram: exact and O(n)."""
    counts = np.bincount(img.reshape(-1), minlength=256 if img.dtype == np.uint8 else 65536)
    cum = np.cumsum(counts)
    n = int(cum[-1])
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        k = int(np.floor(pos))
        frac = pos - k
        a = float(np.searchsorted(cum, k, side="right"))
        b = float(np.searchsorted(cum, min(k + 1, n - 1), side="right"))
        out.append(a + frac * (b - a))
    return out[0], out[1]


class ThermalNormalizer:
    """Callable: thermal image (any supported encoding) -> HxWx3 uint8 with 3 equal channels.

    Exception: with method='none' an 8-bit HxWx3 input is returned untouched (the official
    benchmark code feeds decoded thermal JPEGs as they are). After each call `last_nonfinite`
    holds the number of NaN/inf pixels and `last_range` the (lo, hi) input values mapped to 0/255.
    """

    def __init__(
        self,
        method: str = "minmax",
        percentiles: Sequence[float] = (1.0, 99.0),
        value_range: Optional[Sequence[float]] = None,
        invert: bool = False,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"thermal normalisation method {method!r} is unknown; choose one of {METHODS}")
        self.method = method
        self.percentiles = _pair(percentiles, "percentiles")
        if not (0.0 <= self.percentiles[0] and self.percentiles[1] <= 100.0):
            raise ValueError(f"percentiles must lie in [0, 100], got {self.percentiles}")
        if method == "fixed" and value_range is None:
            raise ValueError(
                "method 'fixed' needs value_range=(lo, hi) in the input's units, e.g. raw counts "
                "(7000, 9000) for 16-bit or degrees (15.0, 45.0) for float temperature images"
            )
        self.value_range = None if value_range is None else _pair(value_range, "value_range")
        if not isinstance(invert, (bool, np.bool_)):
            raise ValueError(f"invert must be true or false, got {invert!r}")
        self.invert = bool(invert)
        self.last_nonfinite = 0
        self.last_range: Tuple[float, float] = (0.0, 255.0)

    def __repr__(self) -> str:
        return (f"ThermalNormalizer(method={self.method!r}, percentiles={self.percentiles}, "
                f"value_range={self.value_range}, invert={self.invert})")

    # ---- input handling ------------------------------------------------------------------
    @staticmethod
    def _check(img) -> np.ndarray:
        if not isinstance(img, np.ndarray):
            raise ValueError(f"thermal image must be a numpy array, got {type(img).__name__}")
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
            raise ValueError(f"thermal image must be HxW, HxWx1 or HxWx3, got shape {img.shape}")
        if img.shape[0] == 0 or img.shape[1] == 0:
            raise ValueError(f"thermal image is empty (shape {img.shape})")
        if img.dtype.kind not in "uif":
            raise ValueError(f"thermal image dtype {img.dtype} is not supported (use uint8, uint16 or float)")
        return img

    @staticmethod
    def _to_gray(img: np.ndarray) -> np.ndarray:
        if img.ndim == 2:
            return img
        if img.dtype not in (np.uint8, np.uint16, np.float32):
            img = img.astype(np.float32)
        code = cv2.COLOR_RGBA2GRAY if img.shape[2] == 4 else cv2.COLOR_RGB2GRAY
        return cv2.cvtColor(np.ascontiguousarray(img), code)  # palette -> luminance

    # ---- range estimation ----------------------------------------------------------------
    def _range(self, gray: np.ndarray, finite: Optional[np.ndarray]) -> Tuple[float, float]:
        if self.method == "fixed":
            return self.value_range
        values = gray if finite is None else gray[finite]
        if values.size == 0:
            return 0.0, 0.0
        if self.method == "minmax":
            return float(values.min()), float(values.max())
        if values.dtype in (np.uint8, np.uint16):
            return _hist_percentiles(values, self.percentiles)
        lo, hi = np.percentile(values, self.percentiles)
        return float(lo), float(hi)

    # ---- mapping -------------------------------------------------------------------------
    @staticmethod
    def _stretch(gray: np.ndarray, lo: float, hi: float) -> np.ndarray:
        scale = 255.0 / (hi - lo) if hi > lo else 0.0  # flat frame -> all black
        if gray.dtype in (np.uint8, np.uint16):
            # one table per frame: cheaper than float maths on every pixel
            levels = np.arange(256 if gray.dtype == np.uint8 else 65536, dtype=np.float64)
            lut = np.clip(np.rint((levels - lo) * scale), 0, 255).astype(np.uint8)
            return np.take(lut, gray)
        x = gray.astype(np.float32)
        x -= np.float32(lo)
        x *= np.float32(scale)
        np.clip(x, 0.0, 255.0, out=x)
        return np.rint(x).astype(np.uint8)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        img = self._check(img)
        self.last_nonfinite = 0
        if self.method == "none":
            if img.dtype != np.uint8:
                raise ValueError(
                    f"thermal normalisation 'none' needs 8-bit input, got {img.dtype} {img.shape}; for "
                    "16-bit counts or float temperatures use 'percentile' (robust to hot spots), 'minmax', "
                    "or 'fixed' with range=(lo, hi) in the image's units"
                )
            self.last_range = (0.0, 255.0)
            if img.ndim == 3:
                return img[:, :, :3] if img.shape[2] == 4 else img
            return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        gray = self._to_gray(img)
        finite = None
        if gray.dtype.kind == "f":
            mask = np.isfinite(gray)
            n_bad = int(mask.size - np.count_nonzero(mask))
            if n_bad:
                self.last_nonfinite = n_bad
                finite = mask
        lo, hi = self._range(gray, finite)
        self.last_range = (lo, hi)
        if finite is not None:
            gray = np.where(finite, gray, np.float32(lo)).astype(gray.dtype, copy=False)
        out = self._stretch(gray, lo, hi)
        if finite is not None:
            out[~finite] = 0  # the low end, whatever the range did to `lo`
        if self.invert:
            out = cv2.bitwise_not(out)
        return cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)
