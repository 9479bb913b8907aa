"""Thermal AGC that never erases the target (issue 18, kind 1): a small hot target on a flat or noisy
background stays visible in every mode, for 8- and 16-bit frames, with the exact values of the rule
(`ckd_ros.frames.thermal`: percentile window floored at 1 % of max - min, anchored at the background)."""
from __future__ import annotations

import numpy as np
import pytest

from ckd_ros.frames.thermal import DEFAULT_THERMAL, ThermalNormalizer, agc_floor, default_normalizer

SIZE = 200  # 40000 pixels
TARGETS = {"1px": (1, 1), "0.5%": (10, 20), "2%": (20, 40)}  # (h, w): 1, 200 and 800 pixels
LEVELS = {8: (60, 200, 3.0), 16: (7000, 9000, 20.0)}  # background, target, noise sigma


def frame(bits: int, background: str, target: str):
    bg, hot, sigma = LEVELS[bits]
    dtype = np.uint8 if bits == 8 else np.uint16
    img = np.full((SIZE, SIZE), float(bg))
    if background == "noisy":
        img += np.random.default_rng(bits).normal(0.0, sigma, img.shape)
    h, w = TARGETS[target]
    mask = np.zeros(img.shape, bool)
    mask[90:90 + h, 80:80 + w] = True
    img[mask] = hot
    return np.rint(img).astype(dtype), mask


def gray(out):
    assert out.dtype == np.uint8 and out.shape == (SIZE, SIZE, 3)
    assert np.array_equal(out[:, :, 0], out[:, :, 2])
    return out[:, :, 0]


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("mode", ["percentile", "auto", "minmax"])
def test_flat_background_target_white_background_black(bits, target, mode):
    img, mask = frame(bits, "flat", target)
    g = gray(ThermalNormalizer(mode)(img))
    if mode == "auto" and bits == 8:  # 8-bit input is used as is
        assert np.all(g[mask] == LEVELS[8][1]) and np.all(g[~mask] == LEVELS[8][0])
        return
    assert np.all(g[mask] == 255) and np.all(g[~mask] == 0)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_flat_background_fixed_range_and_inverted(bits, target):
    img, mask = frame(bits, "flat", target)
    bg, hot, _ = LEVELS[bits]
    lo, hi = bg - (hot - bg) / 2, hot + (hot - bg) / 2  # the range around both
    g = gray(ThermalNormalizer("fixed", value_range=(lo, hi))(img))
    assert np.all(g[mask] == 191) and np.all(g[~mask] == 64)  # 0.75 and 0.25 of the range
    g = gray(ThermalNormalizer("percentile", invert=True)(img))
    assert np.all(g[mask] == 0) and np.all(g[~mask] == 255)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("target", ["1px", "0.5%"])
@pytest.mark.parametrize("mode", ["percentile", "auto"])
def test_noisy_background_sparse_target_saturates_above_a_mid_grey_background(bits, target, mode):
    img, mask = frame(bits, "noisy", target)
    g = gray(ThermalNormalizer(mode)(img))
    if mode == "auto" and bits == 8:
        np.testing.assert_array_equal(g, img)
        return
    # below 1 % of the pixels the target is above p99: white; the background is stretched around mid grey
    assert np.all(g[mask] == 255)
    assert 100 <= g[~mask].mean() <= 155


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("mode", ["percentile", "minmax"])
def test_noisy_background_large_target_sets_the_range(bits, mode):
    img, mask = frame(bits, "noisy", "2%")
    g = gray(ThermalNormalizer(mode)(img))
    assert np.all(g[mask] == 255)  # p99 (or max) is the target
    assert g[~mask].mean() < 30 and g[~mask].max() < 80


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_noisy_background_minmax(bits, target):
    img, mask = frame(bits, "noisy", target)
    g = gray(ThermalNormalizer("minmax")(img))
    assert np.all(g[mask] == 255) and g[~mask].mean() < 30


def test_float_temperatures_on_a_clipped_sky():
    sky = np.full((SIZE, SIZE), -40.0, np.float32)
    sky[100:103, 100:103] = 30.0  # 9 pixels
    norm = ThermalNormalizer("percentile")
    g = gray(norm(sky))
    assert np.all(g[100:103, 100:103] == 255) and g.sum() == 9 * 255
    assert norm.last_range == pytest.approx((-40.0, -40.0 + 0.7))  # 1 % of the 70 degree range


def test_cold_target_on_a_warm_background_stays_visible():
    img = np.full((SIZE, SIZE), 9000, np.uint16)
    img[50:52, 50:52] = 7000
    g = gray(ThermalNormalizer("percentile")(img))
    assert np.all(g[50:52, 50:52] == 0) and np.all(g[:40] == 255)


def test_agc_floor_rule():
    # wide enough: untouched (a scene with contrast keeps its percentile stretch)
    assert agc_floor(1010.0, 1990.0, 1000.0, 60000.0, 0.01) == (1010.0, 1990.0)
    # collapsed, hot outliers: from the background upwards
    assert agc_floor(7000.0, 7000.0, 7000.0, 9000.0, 0.01) == (7000.0, 7020.0)
    # collapsed, cold outliers: from the background downwards
    assert agc_floor(9000.0, 9000.0, 7000.0, 9000.0, 0.01) == (8980.0, 9000.0)
    # min_span 1 is min-max; a flat frame stays flat (black)
    assert agc_floor(7500.0, 7600.0, 7000.0, 9000.0, 1.0) == (7000.0, 9000.0)
    assert agc_floor(5.0, 5.0, 5.0, 5.0, 0.01) == (5.0, 5.0)


def test_the_shared_default_is_one_config():
    norm = default_normalizer()
    assert norm.settings() == {"method": "auto", "percentiles": [1.0, 99.0], "value_range": None,
                               "invert": False, "min_span": 0.01}
    assert ThermalNormalizer().settings() == norm.settings()
    assert DEFAULT_THERMAL["method"] == "auto"
    with pytest.raises(ValueError, match="min_span"):
        ThermalNormalizer(min_span=2.0)
