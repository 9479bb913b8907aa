"""Synthetic RGB-T generator: determinism, ground truth, 16-bit thermal, modality gap, scenarios."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ckd_ros.synthetic import EFFECTS, SCENARIOS, SyntheticScene, make_sequence, write_sequence
from ckd_ros.synthetic.scene import COUNTS_PER_K, KELVIN
from ckd_ros.synthetic.sprites import SPRITE

SIZE = (192, 160)  # small frames keep the tests fast; the scene scales with the resolution


def _seq(seed, scenario, n=40, size=SIZE):
    return make_sequence(seed, n, size=size, scenario=scenario)


def test_same_seed_same_arrays_and_other_seed_differs():
    a, b = _seq(7, None, 12), _seq(7, None, 12)
    assert a.scenario == b.scenario
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.thermal16, b.thermal16)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    c = _seq(8, a.scenario, 12)
    assert not np.array_equal(a.rgb, c.rgb)
    assert not np.array_equal(a.boxes, c.boxes)


def test_scene_frames_are_random_access_and_match_the_sequence():
    seq = _seq(3, "mixed", 20)
    scene = SyntheticScene(3, SIZE, scenario="mixed", period=20)
    for t in (13, 0, 19):  # any order: frame(t) has no state
        rgb, tir, box = scene.frame(t)
        np.testing.assert_array_equal(rgb, seq.rgb[t])
        np.testing.assert_array_equal(tir, seq.thermal16[t])
        np.testing.assert_array_equal(box, seq.boxes[t])


def test_shapes_and_dtypes_follow_size_width_height():
    seq = make_sequence(1, 3, size=(320, 256), scenario="clean")
    assert seq.rgb.shape == (3, 256, 320, 3) and seq.rgb.dtype == np.uint8
    assert seq.thermal16.shape == (3, 256, 320) and seq.thermal16.dtype == np.uint16
    assert seq.boxes.shape == (3, 4)
    assert len(seq) == 3


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_gt_box_inside_the_image(scenario):
    for seed in range(4):
        seq = _seq(seed, scenario, 60)
        x, y, w, h = seq.boxes.T
        assert (w >= 4).all() and (h >= 4).all()
        assert (x >= 0).all() and (y >= 0).all()
        assert (x + w <= SIZE[0]).all() and (y + h <= SIZE[1]).all()


@pytest.mark.parametrize("scenario", ["clean", "scale", "camera_motion", "distractors"])
def test_gt_box_matches_the_rendered_target(scenario):
    """RGB pixels inside the GT box are the target sprite (up to noise); a 3-px shift is not."""
    for seed in range(3):
        scene = SyntheticScene(seed, SIZE, scenario=scenario, period=40)
        for t in (0, 17, 31):
            rgb, _, box = scene.frame(t)
            x, y, w, h = (int(v) for v in box)
            interp = cv2.INTER_AREA if w < SPRITE else cv2.INTER_LINEAR
            mask = cv2.resize(scene.target.mask, (w, h), interpolation=interp) > 0.999
            want = cv2.resize(scene.target.rgb, (w, h), interpolation=interp) * scene.rgb_gain(t)
            want = np.clip(want, 0, 255)

            def err(dx, dy, rgb=rgb, x=x, y=y, w=w, h=h, mask=mask, want=want):
                x0, y0 = min(max(0, x + dx), SIZE[0] - w), min(max(0, y + dy), SIZE[1] - h)
                patch = rgb[y0:y0 + h, x0:x0 + w].astype(np.float32)
                return float(np.abs(patch - want)[mask].mean())

            assert err(0, 0) < 4.0, (scenario, seed, t)  # sensor noise sigma is 2.5
            assert min(err(3, 0), err(-3, 0), err(0, 3), err(0, -3)) > err(0, 0) + 3.0


def test_target_is_warm_in_thermal_and_boxes_follow_it():
    for seed in range(4):
        seq = _seq(seed, "clean", 30)
        for t in (0, 15, 29):
            x, y, w, h = seq.boxes[t].astype(int)
            tir = seq.thermal16[t].astype(np.float32)
            inner = tir[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4].mean()
            ring = np.concatenate([tir[max(0, y - 6):y, x:x + w].ravel(), tir[y + h:y + h + 6, x:x + w].ravel(),
                                   tir[y:y + h, max(0, x - 6):x].ravel(), tir[y:y + h, x + w:x + w + 6].ravel()])
            assert inner - np.median(ring) > 4.0 * COUNTS_PER_K  # > 4 K warmer than its surroundings


def test_thermal_is_16_bit_radiometric_counts():
    for scenario in SCENARIOS:
        tir = _seq(5, scenario, 10).thermal16
        assert tir.dtype == np.uint16
        celsius = tir.astype(np.float64) / COUNTS_PER_K - KELVIN
        assert celsius.min() > -40 and celsius.max() < 120  # plausible scene temperatures, no clipping
        assert tir.min() > 255  # would not fit 8 bits: the normalisation path is exercised
        assert tir.max() - tir.min() > 500  # > 5 K of scene contrast, many more than 256 levels
        assert len(np.unique(tir[0])) > 256


def test_modality_gap_rgb_is_not_a_transform_of_thermal():
    """Intensities of gray RGB and thermal are nearly uncorrelated; edges only partly shared."""
    rs, gs = [], []
    for seed in range(8):
        seq = _seq(seed, "clean", 1, size=(320, 256))
        gray = cv2.cvtColor(seq.rgb[0], cv2.COLOR_RGB2GRAY).astype(np.float32)
        tir = seq.thermal16[0].astype(np.float32)
        rs.append(abs(np.corrcoef(gray.ravel(), tir.ravel())[0, 1]))
        gx = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)).ravel()
        tx = np.abs(cv2.Sobel(tir, cv2.CV_32F, 1, 0)).ravel()
        gs.append(np.corrcoef(gx, tx)[0, 1])
    assert np.mean(rs) < 0.4
    assert 0.05 < np.mean(gs) < 0.7  # same scene geometry, different textures and contrast
    # the target's own texture differs too: RGB stripes/checks vs a smooth body with a hot spot
    scene = SyntheticScene(0, SIZE, scenario="clean")
    target_gray = cv2.cvtColor(scene.target.rgb.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    inside = scene.target.mask > 0.999
    assert abs(np.corrcoef(target_gray[inside], scene.target.heat[inside])[0, 1]) < 0.6


def _box_mean(img, box):
    x, y, w, h = (int(v) for v in box)
    return float(img[y:y + h, x:x + w].astype(np.float32).mean())


def test_night_darkens_rgb_only():
    seq = _seq(2, "night", 40)
    early, late = seq.rgb[0].mean(), seq.rgb[25].mean()
    assert late < 0.15 * early
    assert abs(seq.thermal16[25].astype(np.float32).mean() - seq.thermal16[0].astype(np.float32).mean()) < 300


def test_crossover_removes_the_thermal_contrast_of_the_target():
    seq = _seq(2, "crossover", 40)

    def contrast(t):
        x, y, w, h = seq.boxes[t].astype(int)
        tir = seq.thermal16[t].astype(np.float32)
        pad = tir[max(0, y - h // 2):y + h + h // 2, max(0, x - w // 2):x + w + w // 2]
        return _box_mean(tir, seq.boxes[t]) - pad.mean()

    assert contrast(0) > 3 * COUNTS_PER_K
    assert abs(contrast(24)) < 0.25 * contrast(0)
    # RGB still shows it: crossover is a thermal-only failure
    assert seq.rgb[24].mean() > 0.6 * seq.rgb[0].mean()


def test_occlusion_covers_part_of_the_target_mid_sequence():
    scene = SyntheticScene(4, SIZE, scenario="occlusion", period=40)
    clean = SyntheticScene(4, SIZE, scenario="clean", period=40)

    def covered(t):
        rgb, _, box = scene.frame(t)
        ref, _, ref_box = clean.frame(t)
        np.testing.assert_array_equal(box, ref_box)  # same target path, only the occluder differs
        x, y, w, h = (int(v) for v in box)
        diff = np.abs(rgb[y:y + h, x:x + w].astype(np.int16) - ref[y:y + h, x:x + w]).max(axis=2)
        return float((diff > 20).mean())

    assert covered(0) == 0.0
    assert 0.15 < covered(20) < 0.8  # partial, not full


def test_distractors_are_look_alikes_in_one_modality():
    scene = SyntheticScene(6, SIZE, scenario="distractors")
    assert len(scene.distractors) == 3
    tgt = scene.target
    rgb_twins = [s for s, *_ in scene.distractors if s.pattern_seed == tgt.pattern_seed]
    heat_twins = [s for s, *_ in scene.distractors if s.heat_level == tgt.heat_level]
    assert rgb_twins and heat_twins
    assert all(s.heat_level < 0.3 * tgt.heat_level for s in rgb_twins)
    assert all(min(abs(s.hue - tgt.hue), 1 - abs(s.hue - tgt.hue)) > 0.25 for s in heat_twins)


def test_scale_changes_the_box_area():
    seq = _seq(1, "scale", 60)
    area = seq.boxes[:, 2] * seq.boxes[:, 3]
    assert area.max() / area.min() > 5.0


def test_camera_motion_moves_the_background():
    moving = SyntheticScene(1, SIZE, scenario="camera_motion", period=60)
    still = SyntheticScene(1, SIZE, scenario="clean", period=60)

    def travel(scene):
        cams = np.array([scene.camera(t) for t in range(60)], np.float32)
        return float(np.abs(np.diff(cams, axis=0)).sum())

    assert travel(moving) > 3 * travel(still)
    assert travel(moving) > 0.25 * SIZE[0]  # a quarter of the frame width in 60 frames


def test_scenario_choice_and_errors():
    chosen = {make_sequence(s, 1, size=(96, 80)).scenario for s in range(40)}
    assert len(chosen) >= 5 and chosen <= set(SCENARIOS)
    assert set(make_sequence(3, 1, size=(96, 80), scenario="mixed").effects) <= set(EFFECTS)
    with pytest.raises(ValueError, match="unknown scenario"):
        make_sequence(0, 2, scenario="fog")
    with pytest.raises(ValueError):
        make_sequence(0, 0)


def test_write_sequence_is_read_back_by_the_tracking_readers(tmp_path):
    from ckd_ros.frames.folders import FrameSource, detect_layout, read_first_box

    seq = _seq(9, "night", 5)
    root = write_sequence(seq, tmp_path / "syn_night")
    rgb_dir, tir_dir, gt = detect_layout(root)
    assert (rgb_dir.name, tir_dir.name, gt.name) == ("visible", "infrared", "init.txt")
    tir = list(FrameSource(tir_dir, unchanged=True))
    assert len(tir) == 5 and tir[0].dtype == np.uint16
    np.testing.assert_array_equal(np.stack(tir), seq.thermal16)  # 16-bit PNG is lossless
    rgb = list(FrameSource(rgb_dir))
    assert rgb[0].shape == seq.rgb[0].shape and np.abs(rgb[0].astype(int) - seq.rgb[0]).mean() < 6  # JPEG
    np.testing.assert_allclose(read_first_box(gt), seq.boxes[0])
    rows = np.loadtxt(root / "init.txt", delimiter=",")
    np.testing.assert_allclose(rows, seq.boxes)

    root8 = write_sequence(seq, tmp_path / "syn8", thermal="gray8", rgb_ext="png")
    img = cv2.imread(str(root8 / "infrared" / "000000.jpg"), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint8 and img.shape == (SIZE[1], SIZE[0], 3)
    with pytest.raises(ValueError):
        write_sequence(seq, tmp_path / "x", layout="gtot")
