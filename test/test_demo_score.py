"""Demo scoring (ROS-free), rig homography, dataset writer and demo launch arguments."""
from __future__ import annotations

import numpy as np
import pytest

from ckd_ros.demo.score import DemoScore, draw_panel, iou
from ckd_ros.synthetic.dataset import plan, rgb_only, write_dataset
from ckd_ros.synthetic.rig import map_box, rig_homography, thermal_view


def test_iou_matches_the_protocol_formula():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_demo_score_matches_by_stamp_and_counts_lost_as_miss():
    s = DemoScore()
    for k in range(10):
        s.add_gt(k, (10 * k, 0, 20, 20))
    for k in range(8):  # frames 8, 9 never processed (dropped)
        box = None if k == 3 else (10 * k + (0 if k < 6 else 15), 0, 20, 20)
        s.add_result(k, box, receive_s=0.05 * k, latency_ms=40 + k)
    ious = s.ious()
    assert len(ious) == 8
    assert ious[3] == 0.0  # LOST
    assert (ious > 0.5).sum() == 5  # 0,1,2,4,5 exact; 6,7 shifted by 15 px (IoU 5/35) miss
    summary = s.summary(min_frac_ok=0.7, min_fps=15)
    assert summary["processed_frames"] == 8 and summary["camera_frames"] == 10
    assert summary["fps"] == pytest.approx(20.0)
    assert summary["frac_iou_gt_0_5"] == pytest.approx(5 / 8)
    assert summary["lost_frames"] == 1
    assert not summary["pass_iou"] and summary["pass_fps"] and not summary["passed"]
    assert summary["latency_ms_p50"] == pytest.approx(43.5)


def test_demo_score_per_frame_rows():
    s = DemoScore()
    for k in range(4):
        s.add_gt(k, (10 * k, 0, 20, 20), frame=50 + k)
    s.add_gt(4, (0, 0, 20, 20))  # no scene frame known
    s.add_result(2, None, 0.1, 40)
    s.add_result(0, (0, 0, 20, 20), 0.0, 40)
    s.add_result(4, (10, 0, 20, 20), 0.2, 40)
    s.add_result(9, (0, 0, 20, 20), 0.3, 40)  # no ground truth: not scored
    rows = s.summary()["per_frame"]
    assert [(r["stamp_ns"], r["frame"], r["lost"]) for r in rows] == [(0, 50, False), (2, 52, True), (4, None, False)]
    assert [r["iou"] for r in rows] == pytest.approx([1.0, 0.0, 1 / 3], abs=1e-4)
    assert len(rows) == len(s.ious())


def test_empty_score_fails():
    summary = DemoScore().summary()
    assert summary["processed_frames"] == 0 and not summary["passed"]


def test_rig_offset_moves_the_thermal_image_and_the_box_maps_back():
    h = rig_homography((6, -4))
    img = np.zeros((60, 80), np.uint16)
    img[20:30, 40:50] = 1000
    view = thermal_view(img, h)
    ys, xs = np.nonzero(view > 500)
    assert (xs.min(), ys.min()) == (46, 16)  # thermal pixel = RGB pixel + (6, -4)
    np.testing.assert_allclose(map_box((40, 20, 10, 10), np.linalg.inv(h)), (46, 16, 10, 10))
    assert thermal_view(img, rig_homography()) is img  # aligned rig: no copy
    assert view[0, 0] == img[0, 0]  # border replicated, not 0 K
    np.testing.assert_allclose(rig_homography(homography=list(np.eye(3).ravel() * 2)), np.eye(3))
    with pytest.raises(ValueError):
        rig_homography(homography=[0.0] * 9)


def test_draw_panel_shapes():
    rgb = np.zeros((64, 80, 3), np.uint8)
    tir = np.zeros((64, 80), np.uint8)
    panel = draw_panel(rgb, tir, (10, 10, 20, 20), (12, 10, 20, 20), "x", (14, 8, 20, 20))
    assert panel.shape == (32, 80, 3)
    assert panel[5:10].any()  # boxes drawn
    assert draw_panel(rgb, None, None, None, "").shape == (32, 40, 3)


def test_dataset_plan_is_balanced_and_disjoint(tmp_path):
    items = plan(per_scenario=2, seed_base=900000)
    assert len(items) == 16 and len({s for s, _ in items}) == 16
    assert {sc for _, sc in items} == {"clean", "night", "crossover", "occlusion", "distractors", "scale",
                                       "camera_motion", "mixed"}
    names = write_dataset(tmp_path / "d", items[:2], num_frames=3, size=(96, 80), log=None)
    assert (tmp_path / "d" / "sequences.txt").read_text().split() == names
    for n in names:
        assert (tmp_path / "d" / n / "init.txt").is_file()
        assert len(list((tmp_path / "d" / n / "infrared").glob("*.jpg"))) == 3
    from ckd_ros.eval import open_dataset

    assert open_dataset("lasher", tmp_path / "d").names == sorted(names)


def test_rgb_only_replaces_thermal_with_rgb_gray():
    from ckd_ros.synthetic import make_sequence

    seq = make_sequence(1, 2, size=(96, 80), scenario="night")
    ro = rgb_only(seq)
    gray = (0.299 * seq.rgb[..., 0] + 0.587 * seq.rgb[..., 1] + 0.114 * seq.rgb[..., 2])
    assert np.abs(ro.thermal16 / 257.0 - gray).max() < 1.5
    assert not np.array_equal(ro.thermal16, seq.thermal16)
    np.testing.assert_array_equal(ro.boxes, seq.boxes)
