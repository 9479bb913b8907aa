"""Crop/pad/resize quirks of the official sample_target, normalisation and decode/map-back/clip."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ckd_ros.tracking.postprocess import clip_box, decode, hann2d, map_box_back
from ckd_ros.tracking.preprocess import crop_window, normalize, pads, sample_target


def official_sample_target(im, target_bb, search_area_factor, output_sz):
    """Verbatim logic of OSTrack/CKD lib/train/data/processing_utils.py::sample_target (no mask)."""
    x, y, w, h = target_bb
    crop_sz = math.ceil(math.sqrt(w * h) * search_area_factor)
    x1 = round(x + 0.5 * w - crop_sz * 0.5)
    x2 = x1 + crop_sz
    y1 = round(y + 0.5 * h - crop_sz * 0.5)
    y2 = y1 + crop_sz
    x1_pad = max(0, -x1)
    x2_pad = max(x2 - im.shape[1] + 1, 0)
    y1_pad = max(0, -y1)
    y2_pad = max(y2 - im.shape[0] + 1, 0)
    im_crop = im[y1 + y1_pad:y2 - y2_pad, x1 + x1_pad:x2 - x2_pad, :]
    im_crop_padded = cv2.copyMakeBorder(im_crop, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT)
    return cv2.resize(im_crop_padded, (output_sz, output_sz)), output_sz / crop_sz


def test_round_half_to_even_origin():
    # box centre 26.5 and crop 40: 26.5 - 20 = 6.5 -> 6 (half-up would give 7); -5.5 -> -6 (not -5)
    x1, y1, crop = crop_window([6.5, -5.5, 40.0, 40.0], 1.0)
    assert crop == 40 and x1 == 6 and y1 == -6
    x1, _, _ = crop_window([7.5, 0.0, 40.0, 40.0], 1.0)  # 7.5 -> 8 (even)
    assert x1 == 8


def test_right_bottom_pad_has_plus_one():
    # crop [60, 100) in a 100-wide image ends exactly at the border: one real column is dropped
    assert pads(60, 60, 40, 100, 100) == (0, 1, 0, 1)
    assert pads(59, 0, 40, 100, 100) == (0, 0, 0, 0)
    assert pads(-3, -4, 40, 100, 100) == (4, 0, 3, 0)
    img = np.full((100, 100, 3), 200, np.uint8)
    crop, factor = sample_target(img, [60, 60, 40, 40], 1.0, 40)  # 1:1 resize: pixels visible as-is
    assert factor == 1.0
    assert crop[:, -1].max() == 0 and crop[-1, :].max() == 0  # last column/row replaced by zeros
    assert crop[:-1, :-1].min() == 200
    crop, _ = sample_target(img, [59, 59, 40, 40], 1.0, 40)
    assert crop.min() == 200  # ends at 99: no padding


def test_matches_official_on_random_boxes():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    for _ in range(200):
        w, h = rng.uniform(2, 60, size=2)
        x, y = rng.uniform(-w / 2, 160 - w / 2), rng.uniform(-h / 2, 120 - h / 2)
        x, y = np.round([x, y], 1) + rng.choice([0.0, 0.05])  # hit .5 ties often
        box = [float(x), float(y), float(w), float(h)]
        for factor, size in ((2.0, 128), (4.0, 256)):
            ref, ref_factor = official_sample_target(img, box, factor, size)
            got, got_factor = sample_target(img, box, factor, size)
            assert np.array_equal(got, ref), box
            assert got_factor == ref_factor


def test_gray_crop_equals_each_channel_of_replicated():
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(90, 70), dtype=np.uint8)
    rgb3 = np.repeat(gray[:, :, None], 3, axis=2)
    box = [-5.0, 50.0, 30.0, 25.0]
    g, _ = sample_target(gray, box, 4.0, 256)
    c, _ = sample_target(rgb3, box, 4.0, 256)
    assert g.shape == (256, 256)
    assert all(np.array_equal(g, c[:, :, k]) for k in range(3))
    assert np.array_equal(normalize(g), normalize(c))


def test_crop_outside_image_is_black():
    img = np.full((50, 50, 3), 255, np.uint8)
    crop, _ = sample_target(img, [500.0, 500.0, 10.0, 10.0], 2.0, 32)
    assert crop.shape == (32, 32, 3) and crop.max() == 0
    with pytest.raises(ValueError, match="too small"):
        sample_target(img, [10.0, 10.0, 0.0, 10.0], 2.0, 32)


def test_normalize_matches_reference_formula():
    rng = np.random.default_rng(2)
    crop = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    ref = ((crop.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)) - mean) / std
    out = normalize(crop)
    assert out.dtype == np.float32 and out.shape == (1, 3, 16, 16)
    assert np.array_equal(out, ref)
    # a zero-padded pixel becomes -mean/std (ckd-spec §7.9)
    np.testing.assert_allclose(normalize(np.zeros((1, 1, 3), np.uint8))[0, :, 0, 0],
                               [-2.1179, -2.0357, -1.8044], atol=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        normalize(crop.astype(np.float32))


def test_hann_is_centred_variant():
    w = hann2d(16)
    h = 0.5 * (1 - np.cos(2 * np.pi * np.arange(1, 17) / 17))
    np.testing.assert_allclose(w, np.outer(h, h), rtol=1e-5)
    assert w.min() > 0  # torch.hann_window(16) would have zeros at the border
    assert np.allclose(w, w[::-1, ::-1])


def test_decode_uses_windowed_argmax_and_raw_score():
    score = np.full((1, 1, 16, 16), 0.1, np.float32)
    score[0, 0, 0, 0] = 0.9  # corner: raw max, but the window kills it
    score[0, 0, 8, 9] = 0.6
    size = np.zeros((1, 2, 16, 16), np.float32)
    size[0, :, 8, 9] = (0.25, 0.125)
    offset = np.zeros((1, 2, 16, 16), np.float32)
    offset[0, :, 8, 9] = (0.5, -0.25)
    box, s, idx = decode(score, size, offset)
    assert idx == 8 * 16 + 9
    assert s == pytest.approx(0.6)
    np.testing.assert_allclose(box, [(9 + 0.5) / 16, (8 - 0.25) / 16, 0.25, 0.125], rtol=1e-6)


def test_map_back_and_clip():
    # search crop centred on the previous box: normalised centre (0.5, 0.5) keeps the centre
    prev = [100.0, 50.0, 40.0, 20.0]
    box = map_box_back(np.array([0.5, 0.5, 0.1, 0.05], np.float32), prev, 256, 2.0)
    assert box == pytest.approx([120 - 6.4, 60 - 3.2, 12.8, 6.4])
    assert clip_box([-5.0, 3.0, 30.0, 4.0], 100, 200, 10) == [0.0, 3.0, 25.0, 10.0]
    assert clip_box([195.0, 95.0, 30.0, 30.0], 100, 200, 10) == [190.0, 90.0, 10.0, 10.0]
