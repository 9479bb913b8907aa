"""ThermalNormalizer: every encoding robots deliver, each method, NaN/inf, validation."""
from __future__ import annotations

import numpy as np
import pytest

from ckd_ros.frames.thermal import ThermalNormalizer, _hist_percentiles


def gray_of(out):
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert np.array_equal(out[:, :, 0], out[:, :, 1]) and np.array_equal(out[:, :, 0], out[:, :, 2])
    return out[:, :, 0]


def ramp(lo, hi, dtype, shape=(40, 64)):
    return np.linspace(lo, hi, shape[0] * shape[1]).reshape(shape).astype(dtype)


def test_minmax_uint8_stretches_to_full_range():
    img = ramp(50, 150, np.uint8)
    g = gray_of(ThermalNormalizer("minmax")(img))
    assert g.min() == 0 and g.max() == 255
    assert np.all(np.diff(g.reshape(-1).astype(int)) >= 0)  # monotone


def test_minmax_uint16_and_hist_percentile_exact():
    rng = np.random.default_rng(5)
    for dtype, hi in ((np.uint16, 65536), (np.uint8, 256)):
        img = rng.integers(0, hi, (50, 70)).astype(dtype)
        offset = (img // 4 + hi // 2).astype(dtype)  # min well above 0: the histogram starts at the frame's min
        for view in (img, img[:, ::2], img[1:-1, 3:], offset, offset[:, ::3], img[:1, :1]):
            for qs in ((1.0, 99.0), (0.0, 100.0), (2.5, 97.3)):  # OpenCV's histogram (rows) and numpy's (strided)
                np.testing.assert_allclose(_hist_percentiles(view, qs), np.percentile(view, qs), rtol=0, atol=1e-9)
    norm = ThermalNormalizer("minmax")
    img16 = ramp(7000, 9000, np.uint16)
    g = gray_of(norm(img16))
    assert (g.min(), g.max()) == (0, 255) and norm.last_range == (7000.0, 9000.0)


def test_percentile_is_robust_to_a_hot_spot():
    img = ramp(1000, 2000, np.uint16, (100, 100))
    img[:3, :3] = 60000  # 9 saturated pixels (< 1 %)
    g_minmax = gray_of(ThermalNormalizer("minmax")(img))
    g_pct = gray_of(ThermalNormalizer("percentile", percentiles=(1, 99))(img))
    scene = np.ones_like(img, bool)
    scene[:3, :3] = False
    # min-max squeezes the whole scene into a few grey levels; percentile keeps its contrast
    assert np.ptp(g_minmax[scene]) < 10
    assert np.ptp(g_pct[scene]) >= 250
    assert np.all(g_pct[~scene] == 255)


def test_float_temperatures_with_nan_and_inf():
    temps = ramp(20.0, 40.0, np.float32)
    temps[0, :5] = np.nan
    temps[1, :2] = np.inf
    temps[2, :1] = -np.inf
    norm = ThermalNormalizer("minmax")
    g = gray_of(norm(temps))
    assert norm.last_nonfinite == 8
    assert norm.last_range[0] >= 20.0 and norm.last_range[1] <= 40.0  # inf ignored for the range
    assert np.all(g[0, :5] == 0) and np.all(g[1, :2] == 0) and g[2, 0] == 0  # low end
    assert g.max() == 255
    inv = ThermalNormalizer("percentile", invert=True)
    gi = gray_of(inv(temps))
    assert inv.last_nonfinite == 8
    assert np.all(gi[0, :5] == 255)  # inverted low end
    clean = ThermalNormalizer("minmax")
    clean(ramp(20.0, 40.0, np.float32))
    assert clean.last_nonfinite == 0


def test_all_nan_and_flat_frames_do_not_crash():
    norm = ThermalNormalizer("percentile")
    out = norm(np.full((8, 8), np.nan, np.float32))
    assert norm.last_nonfinite == 64 and out.max() == 0
    assert ThermalNormalizer("minmax")(np.full((8, 8), 3000, np.uint16)).max() == 0


def test_fixed_range_in_input_units():
    temps = np.array([[10.0, 25.0, 30.0, 35.0, 50.0]], np.float32)
    g = gray_of(ThermalNormalizer("fixed", value_range=(25.0, 35.0))(temps))
    assert g.tolist() == [[0, 0, 128, 255, 255]]
    counts = np.array([[6000, 7000, 8000, 9000, 12000]], np.uint16)
    g = gray_of(ThermalNormalizer("fixed", value_range=(7000, 9000))(counts))
    assert g.tolist() == [[0, 0, 128, 255, 255]]
    g = gray_of(ThermalNormalizer("fixed", value_range=(7000, 9000), invert=True)(counts))
    assert g.tolist() == [[255, 255, 127, 0, 0]]


def test_none_mode():
    gray = ramp(0, 255, np.uint8)
    g = gray_of(ThermalNormalizer("none")(gray))
    assert np.array_equal(g, gray)
    three = np.random.default_rng(6).integers(0, 256, (10, 12, 3), np.uint8)
    assert np.array_equal(ThermalNormalizer("none")(three), three)  # benchmark parity: untouched
    assert np.array_equal(gray_of(ThermalNormalizer("none", invert=False)(gray[:, :, None])), gray)
    with pytest.raises(ValueError, match="needs 8-bit input.*percentile"):
        ThermalNormalizer("none")(gray.astype(np.uint16))


def test_palette_image_becomes_gray():
    rng = np.random.default_rng(7)
    palette = rng.integers(0, 256, (20, 30, 3), np.uint8)
    g = gray_of(ThermalNormalizer("minmax")(palette))
    lum = palette @ np.array([0.299, 0.587, 0.114])
    # monotone in luminance: brightest palette pixel -> 255, darkest -> 0
    assert g.flat[np.argmax(lum)] == 255 and g.flat[np.argmin(lum)] == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "agc"}, "unknown"),
    ({"percentiles": (99, 1)}, "lo < hi"),
    ({"percentiles": (1, 120)}, r"\[0, 100\]"),
    ({"method": "fixed"}, "value_range"),
    ({"method": "fixed", "value_range": (5, 5)}, "lo < hi"),
    ({"method": "fixed", "value_range": (0, float("inf"))}, "finite"),
    ({"invert": "yes"}, "invert"),
])
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ThermalNormalizer(**kwargs)


@pytest.mark.parametrize("img, match", [
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.zeros((0, 4), np.uint16), "empty"),
    (np.zeros((4, 4), bool), "dtype"),
    ([[1, 2], [3, 4]], "numpy array"),
])
def test_input_validation(img, match):
    with pytest.raises(ValueError, match=match):
        ThermalNormalizer()(img)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_stretch_table_of_the_frames_own_levels_equals_the_full_table(dtype):
    rng = np.random.default_rng(3)
    top = 255 if dtype == np.uint8 else 65535
    for lo_v, hi_v, lo, hi in ((10, 200, 37.5, 151.25), (3000, 9000, 4000.0, 4000.5), (0, top, 0.0, float(top)),
                               (500 % top, 500 % top, 500.0 % top, 500.0 % top)):
        img = rng.integers(lo_v, hi_v + 1, (33, 47)).astype(dtype)
        levels = (int(img.min()), int(img.max()))
        full = ThermalNormalizer._stretch(img, lo, hi)
        assert np.array_equal(ThermalNormalizer._stretch(img, lo, hi, levels), full)

