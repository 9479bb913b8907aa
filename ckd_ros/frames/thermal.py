"""The one thermal conversion: thermal frames as robots deliver them -> the 8-bit image CKD takes.

Inputs: 8-bit gray (mono8), 16-bit raw/radiometric counts (mono16 / 16UC1), other integer types,
32/64-bit float temperatures (32FC1) and colour palettes (HxWx3/4, RGB order; converted to gray).
Output: HxWx3 uint8 with 3 equal channels (or the untouched 8-bit colour image for `none`).

Methods:

* `auto` (the default, `DEFAULT_THERMAL`) - 8-bit input used as is (`none`: what the benchmarks
  store and the official code feeds), anything else `percentile`;
* `percentile` - stretch the frame's [p_lo, p_hi] percentiles (default 1, 99) to [0, 255], with the
  AGC floor below;
* `minmax`     - stretch [min, max] of the frame to [0, 255];
* `fixed`      - stretch a fixed `value_range=(lo, hi)` given in the input's units;
* `none`       - 8-bit input only, used as is.

AGC floor (issue 18, "AGC that never erases the target"): a small hot target on a uniform background
(< 1 % of the pixels) puts both percentiles on the background, and a plain stretch maps the whole
frame to one grey level. So the stretched window [lo, hi] is never narrower than `min_span` (default
1 %) of the frame's full range (max - min): a collapsed window is widened to that span, kept inside
[min, max] and anchored at the background side, so the background stays at one end and a target that
stands out from it saturates at the other (min-max-like; `min_span=1` is min-max). A scene with real
contrast (window wider than 1 % of the range) keeps the plain percentile stretch, which is what makes
it robust to a few dead/saturated pixels. A frame with max == min is black.
The rule is the same in `ckd track`, `ckd benchmark`, training and the node because they all call
this class (thermal cores do the same with a "max gain" limit on their histogram AGC).

Non-finite pixels (NaN / inf) are treated as the low end of the range (black, white with
`invert`) and counted in `last_nonfinite` so a caller can warn.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from ckd_ros.errors import ParameterError
from ckd_ros.frames.reader import ImageConversionError

METHODS = ("auto", "percentile", "minmax", "fixed", "none")
#: The shared default conversion (training, `ckd track`, `ckd benchmark`, the node): method + parameters.
DEFAULT_THERMAL = {"method": "auto", "percentiles": (1.0, 99.0), "min_span": 0.01, "invert": False}


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


def _hist_percentiles(img: np.ndarray, qs: Sequence[float], vmin: Optional[int] = None,
                      vmax: Optional[int] = None) -> Tuple[float, float]:
    """np.percentile(img, qs) (linear method) for uint8/uint16 via a histogram: exact and O(n).

    One bin per value from `vmin` to `vmax` (the image's min and max, computed when not given; given,
    they must bound every pixel), so a 16-bit frame whose values span 2000 counts needs 2000 bins, not
    65536. The histogram is OpenCV's
    (it releases the GIL, which matters in the node where executor threads run beside the worker)
    when its float32 counts are exact (< 2**24 pixels), numpy's otherwise.
    """
    vmin = int(img.min()) if vmin is None else int(vmin)
    vmax = int(img.max()) if vmax is None else int(vmax)
    bins = vmax - vmin + 1
    if img.ndim == 2 and img.size < 2 ** 24 and img.strides[1] == img.itemsize:
        counts = cv2.calcHist([img], [0], None, [bins], [vmin, vmax + 1]).reshape(-1).astype(np.int64)
    else:
        flat = img.reshape(-1)
        counts = np.bincount(flat - flat.dtype.type(vmin) if vmin else flat, minlength=bins)
    cum = np.cumsum(counts)
    n = int(cum[-1])
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        k = int(np.floor(pos))
        frac = pos - k
        a = float(np.searchsorted(cum, k, side="right"))
        b = float(np.searchsorted(cum, min(k + 1, n - 1), side="right"))
        out.append(vmin + a + frac * (b - a))
    return out[0], out[1]


class ThermalNormalizer:
    """Callable: thermal image (HxW, HxWx1, HxWx3/4; uint8/uint16/int/float) -> HxWx3 uint8, 3 equal channels.

    Exception: 8-bit HxWx3 input with method 'none' (or 'auto') is returned untouched (the official
    benchmark code feeds decoded thermal JPEGs as they are). After each call `last_nonfinite`
    holds the number of NaN/inf pixels and `last_range` the (lo, hi) input values mapped to 0/255.
    `ThermalNormalizer()` is the shared default (`DEFAULT_THERMAL`). Bad settings raise ValueError;
    a frame that cannot be converted raises `ImageConversionError` (a FrameError and ValueError).
    """

    def __init__(
        self,
        method: str = DEFAULT_THERMAL["method"],
        percentiles: Sequence[float] = DEFAULT_THERMAL["percentiles"],
        value_range: Optional[Sequence[float]] = None,
        invert: bool = DEFAULT_THERMAL["invert"],
        min_span: float = DEFAULT_THERMAL["min_span"],
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
        try:
            self.min_span = float(min_span)
        except (TypeError, ValueError):
            raise ValueError(f"min_span must be a number in [0, 1], got {min_span!r}") from None
        if not 0.0 <= self.min_span <= 1.0:
            raise ValueError(f"min_span must lie in [0, 1] (fraction of the frame's max - min), got {min_span!r}")
        self.last_nonfinite = 0
        self.last_range: Tuple[float, float] = (0.0, 255.0)

    def __repr__(self) -> str:
        return (f"ThermalNormalizer(method={self.method!r}, percentiles={self.percentiles}, "
                f"value_range={self.value_range}, invert={self.invert}, min_span={self.min_span})")

    def settings(self) -> dict:
        """The conversion as plain data (method + parameters), e.g. for provenance files."""
        return {"method": self.method, "percentiles": list(self.percentiles),
                "value_range": None if self.value_range is None else list(self.value_range),
                "invert": self.invert, "min_span": self.min_span}

    # ---- input handling ------------------------------------------------------------------
    @staticmethod
    def _check(img) -> np.ndarray:
        if not isinstance(img, np.ndarray):
            raise ImageConversionError("thermal", f"thermal image must be a numpy array, got {type(img).__name__}")
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
            raise ImageConversionError("thermal", f"thermal image must be HxW, HxWx1, HxWx3 or HxWx4, got shape "
                                       f"{img.shape}; publish/store one gray channel or a colour palette")
        if img.shape[0] == 0 or img.shape[1] == 0:
            raise ImageConversionError("thermal", f"thermal image is empty (shape {img.shape})")
        if img.dtype.kind not in "uif":
            raise ImageConversionError("thermal", f"thermal image dtype {img.dtype} is not supported "
                                       "(use uint8, uint16, another integer type or float)")
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
    def _range(self, gray: np.ndarray, finite: Optional[np.ndarray],
               method: str) -> Tuple[float, float, Optional[Tuple[int, int]]]:
        """(lo, hi, levels): the input values mapped to 0 / 255, and for uint8/uint16 input the frame's
        (min, max), the only levels `_stretch` has to tabulate (None: all of them)."""
        if method == "fixed":
            return self.value_range[0], self.value_range[1], None
        values = gray if finite is None else gray[finite]
        if values.size == 0:
            return 0.0, 0.0, None
        vmin, vmax = float(values.min()), float(values.max())
        levels = (int(vmin), int(vmax)) if values.dtype in (np.uint8, np.uint16) else None
        if method == "minmax":
            return vmin, vmax, levels
        if levels is not None:
            lo, hi = _hist_percentiles(values, self.percentiles, *levels)
        else:
            lo, hi = (float(v) for v in np.percentile(values, self.percentiles))
        return agc_floor(lo, hi, vmin, vmax, self.min_span) + (levels,)

    # ---- mapping -------------------------------------------------------------------------
    @staticmethod
    def _stretch(gray: np.ndarray, lo: float, hi: float, levels: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """HxW gray (input units) -> HxW uint8: rint((v - lo) * 255 / (hi - lo)) clipped to [0, 255].
        `levels` = (min, max) of an integer `gray` (bounding every pixel) limits the table to them."""
        scale = 255.0 / (hi - lo) if hi > lo else 0.0  # flat frame -> all black
        if gray.dtype in (np.uint8, np.uint16):
            # one table per frame: cheaper than float maths on every pixel; only the levels the frame
            # has (`levels` = its min, max) are computed, the rest of the table is never read
            first, last = levels if levels is not None else (0, 255 if gray.dtype == np.uint8 else 65535)
            lut = np.zeros(256 if gray.dtype == np.uint8 else 65536, dtype=np.uint8)
            values = np.arange(first, last + 1, dtype=np.float64)
            lut[first:last + 1] = np.clip(np.rint((values - lo) * scale), 0, 255).astype(np.uint8)
            return np.take(lut, gray)
        x = gray.astype(np.float32)
        x -= np.float32(lo)
        x *= np.float32(scale)
        np.clip(x, 0.0, 255.0, out=x)
        return np.rint(x).astype(np.uint8)

    def resolved_method(self, img: np.ndarray) -> str:
        """The method applied to `img`: 'auto' -> 'none' for 8-bit input, 'percentile' otherwise."""
        if self.method != "auto":
            return self.method
        return "none" if img.dtype == np.uint8 else "percentile"

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """Thermal image -> HxWx3 uint8 (see the class docstring)."""
        return self.convert(img)

    def convert(self, img: np.ndarray, keep_gray: bool = False) -> np.ndarray:
        """As `__call__`; `keep_gray=True` returns HxW uint8 when the result is gray (saves 2/3 of crop work)."""
        img = self._check(img)
        self.last_nonfinite = 0
        method = self.resolved_method(img)
        if method == "none":
            if img.dtype != np.uint8:
                raise ImageConversionError(
                    "thermal", f"thermal normalisation 'none' needs 8-bit input, got {img.dtype} {img.shape}; for "
                    "16-bit counts or float temperatures use 'percentile' (robust to hot spots), 'minmax', "
                    "or 'fixed' with range=(lo, hi) in the image's units"
                )
            self.last_range = (0.0, 255.0)
            if img.ndim == 3:
                return img[:, :, :3] if img.shape[2] == 4 else img
            return img if keep_gray else cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        gray = self._to_gray(img)
        finite = None
        if gray.dtype.kind == "f":
            mask = np.isfinite(gray)
            n_bad = int(mask.size - np.count_nonzero(mask))
            if n_bad:
                self.last_nonfinite = n_bad
                finite = mask
        lo, hi, levels = self._range(gray, finite, method)
        self.last_range = (lo, hi)
        if finite is not None:
            gray = np.where(finite, gray, np.float32(lo)).astype(gray.dtype, copy=False)
        out = self._stretch(gray, lo, hi, levels)
        if finite is not None:
            out[~finite] = 0  # the low end, whatever the range did to `lo`
        if self.invert:
            out = cv2.bitwise_not(out)
        return out if keep_gray else cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


def agc_floor(lo: float, hi: float, vmin: float, vmax: float, min_span: float) -> Tuple[float, float]:
    """The AGC floor of the module docstring: widen [lo, hi] to >= min_span * (vmax - vmin).

    The widened window stays inside [vmin, vmax] and grows away from the background: from `lo` upwards
    when the outliers are hot (more range above hi than below lo), from `hi` downwards when cold.
    Returns (lo, hi) in input units; (vmin, vmax) when min_span is 1; hi == lo only for a flat frame.
    """
    floor = min_span * (vmax - vmin)
    if hi - lo >= floor:
        return lo, hi
    if (vmax - hi) >= (lo - vmin):  # hot outliers: keep the background at the cold end
        lo = max(vmin, min(lo, vmax - floor))
        return lo, lo + floor
    hi = min(vmax, max(hi, vmin + floor))
    return hi - floor, hi


def default_normalizer() -> ThermalNormalizer:
    """A new `ThermalNormalizer` with the shared default settings (`DEFAULT_THERMAL`)."""
    return ThermalNormalizer(**DEFAULT_THERMAL)


class ThermalConverter:
    """The thermal conversion of `ckd track` and `ckd benchmark`: the frame layer's `ThermalNormalizer`
    with the command's options (default 'auto', the shared default: 8-bit as is, the percentile
    stretch otherwise), counting frames that held NaN/inf pixels and remembering what 'auto' resolved
    to (for provenance). Bad options raise `ParameterError`."""

    def __init__(self, method: str = "auto", percentiles=(1.0, 99.0), value_range=None, invert: bool = False):
        try:
            self.normalizer = ThermalNormalizer(method, percentiles=percentiles, value_range=value_range,
                                                invert=invert)
        except ValueError as exc:
            raise ParameterError(f"thermal options: {exc}") from None
        self.resolved: Optional[str] = None
        self.nonfinite_frames = 0

    def __call__(self, tir: np.ndarray) -> np.ndarray:
        n = self.normalizer
        if self.resolved is None:
            self.resolved = n.resolved_method(np.asarray(tir))
        out = n(tir)
        self.nonfinite_frames += n.last_nonfinite > 0
        return out

    def describe(self) -> Dict[str, object]:
        """For provenance: the settings, and the method 'auto' resolved to (once a frame was seen)."""
        n = self.normalizer
        return {"method": n.method, "resolved": self.resolved, "percentiles": list(n.percentiles),
                "value_range": None if n.value_range is None else list(n.value_range), "invert": bool(n.invert),
                "min_span": getattr(n, "min_span", None)}
