"""Hand-made tiny sequences: each test fails under one of the wrong protocol choices of the fixture
README §3.5 (strict/non-strict thresholds, pooling, trapezoid, modalities, rounding, sub-sampling,
LasHeR repairs) and pins the edge cases (NaN, zero size, invalid ground truth, short files)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ckd_ros.boxes import corners_to_ltwh, iou, round_half_away
from ckd_ros.errors import CKDError
from ckd_ros.eval import evaluate
from ckd_ros.eval.protocols import fused_errors, get_protocol, lasher_frame_errors, matlab_auc
from ckd_ros.eval.thresholds import OVERLAP_21, OVERLAP_51, colon
from ckd_ros.frames.datasets import GroundTruth

GT = [10, 10, 40, 20]  # x y w h used by most sequences
FAR = [500, 500, 40, 20]


def _write(path: Path, rows, sep=" ", end="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(end.join(sep.join(repr(float(v)) if not float(v).is_integer() else str(int(v)) for v in r)
                             for r in rows) + end)


def _corners(rows):
    return [[x, y, x + w, y + h] for x, y, w, h in rows]


def make_dataset(root: Path, protocol: str, gts: dict) -> Path:
    """Annotation-only layout of `protocol`; gts: seq -> (visible rows, infrared rows) in x y w h."""
    names = list(gts)
    if protocol in ("gtot", "rgbt234", "rgbt210"):
        (root / "SequencesName.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / "SequencesName.txt").write_text("\r\n".join(names))
    for name, (vis, ir) in gts.items():
        if protocol == "gtot":
            _write(root / name / "groundTruth_v.txt", _corners(vis))
            _write(root / name / "groundTruth_i.txt", _corners(ir))
        elif protocol == "rgbt234":
            _write(root / name / "visible.txt", vis, ",", "\r\n")
            _write(root / name / "infrared.txt", ir, ",", "\r\n")
        elif protocol == "rgbt210":
            _write(root / name / "init.txt", vis, ",")
        elif protocol == "lasher":
            _write(root / "annos" / f"{name}.txt", vis, ",")
        elif protocol == "vtuav":
            _write(root / name / "rgb.txt", vis)
            _write(root / name / "ir.txt", ir)
    if protocol == "lasher":
        (root / "all_dataset_lashertest.txt").write_text("\n".join(names))
    return root


def run(tmp_path, protocol, gts, results, sep=" ", tracker="T", prefixed=False):
    gt_dir = make_dataset(tmp_path / "gt", protocol, {k: v if isinstance(v, tuple) else (v, v)
                                                     for k, v in gts.items()})
    res_dir = tmp_path / "results" / tracker
    for name, rows in results.items():
        _write(res_dir / (f"{tracker}_{name}.txt" if prefixed else f"{name}.txt"), rows, sep)
    return evaluate(gt_dir, res_dir, protocol)


def shifted(box, dx=0.0, dy=0.0):
    return [box[0] + dx, box[1] + dy, box[2], box[3]]


# ---- thresholds and rounding --------------------------------------------------------------
def test_matlab_colon_vectors():
    assert OVERLAP_21[13] == 0.6499999999999999 and OVERLAP_21[3] == 0.15000000000000002
    assert len(OVERLAP_51) == 51 and OVERLAP_51[29] == 0.5800000000000001 and OVERLAP_51[41] == 0.8200000000000001
    assert list(colon(0, 0.5, 25)[[0, 10, 50]]) == [0.0, 5.0, 25.0]
    assert len(colon(0, 1, 50)) == 51 and colon(1, 1, 0).size == 0


def test_iou_exactly_065_counts_as_success():
    # IoU = 130/200 = 0.65 > 0.6499999999999999 (MATLAB), but not > 0.65 (linspace / k*0.05)
    gt = GroundTruth("s", (np.array([[0, 0, 20, 10.0]]),), np.zeros(4))
    counts = get_protocol("rgbt234").sequence_counts(gt, np.array([[0, 0, 13, 10.0]]))
    assert iou(np.array([[0, 0, 13, 10.0]]), gt.boxes[0])[0] == 0.65
    assert counts.counts["success"][13] == 1 and counts.counts["success"][14] == 0


def test_round_half_away_from_zero():
    values = np.array([104.5, 2.5, -2.5, -0.5, 0.49999999999999994, 3.4999, np.nan])
    out = round_half_away(values)
    assert list(out[:6]) == [105, 3, -3, -1, 0, 3] and math.isnan(out[6])
    # corner2rect rounds after taking differences: w = round(114.7 - 10.2) = round(104.5) = 105
    rect = corners_to_ltwh(np.array([[10.2, 5.5, 114.7, 5.5, 114.7, 25.0, 10.2, 25.0]]))
    assert rect.tolist() == [[10, 6, 105, 20]]


def test_eight_column_results_round_half_away(tmp_path):
    # x1 = 14.5 -> 15 (half away; half-even gives 14), so the centre error is 5 px: a miss for GTOT's < 5
    row = [14.5, 10, 54.5, 10, 54.5, 30, 14.5, 30]
    got = run(tmp_path, "gtot", {"s": [GT]}, {"s": [row]}, sep=",", prefixed=True)
    assert got["MPR"] == 0.0


def test_four_column_results_are_not_rounded(tmp_path):
    got = run(tmp_path, "gtot", {"s": [GT]}, {"s": [shifted(GT, 4.6)]})  # error 4.6 (rounded: 5, a miss)
    assert got["MPR"] == 100.0


# ---- GTOT --------------------------------------------------------------------------------
def test_gtot_strict_five_pixels(tmp_path):
    gts = {"s": [GT] * 4}
    got = run(tmp_path, "gtot", gts, {"s": [GT, GT, shifted(GT, 5), shifted(GT, 0, -5)]})
    assert got["MPR"] == 50.0  # <= 5 would give 100


def test_gtot_pools_frames_over_sequences(tmp_path):
    gts = {"a": [GT], "b": [GT] * 3}
    got = run(tmp_path, "gtot", gts, {"a": [GT], "b": [FAR] * 3})
    assert got["MPR"] == 25.0  # per-sequence mean would be 50


def test_gtot_msr_is_the_51_point_trapezoid(tmp_path):
    gt = [0, 0, 100, 100]
    got = run(tmp_path, "gtot", {"s": [gt]}, {"s": [[0, 0, 100, 99]]})  # IoU 0.99
    # success is 1 for t = 0..0.98 and 0 at t = 1: area 0.98 + 0.02/2 = 0.99
    assert got["MSR"] == pytest.approx(99.0, abs=1e-9)
    assert abs(got["MSR"] - 100 * 50 / 51) > 0.5 and abs(got["MSR"] - 100 * 20 / 21) > 0.5  # means
    assert matlab_auc(OVERLAP_51, np.ones(51)) == pytest.approx(1.0)


def test_gtot_ground_truth_is_corners_without_plus_one(tmp_path):
    # groundTruth_v "10 10 50 30" is the box 10 10 40 20: the same result has IoU 1 (success up to
    # t = 0.98, so the trapezoid is 0.99); with w = x2 - x1 + 1 the IoU would be 800/861
    got = run(tmp_path, "gtot", {"s": [GT]}, {"s": [GT]})
    assert got == {"MPR": 100.0, "MSR": pytest.approx(99.0)}


@pytest.mark.parametrize("protocol", ["gtot", "rgbt234", "vtuav"])
def test_best_of_both_modalities(tmp_path, protocol):
    # the result follows the infrared box; visible alone would score 0
    gts = {"s": ([FAR], [GT])}
    got = run(tmp_path, protocol, gts, {"s": [GT]})
    pr, sr = get_protocol(protocol).metrics
    assert got[pr] == 100.0 and got[sr] > 95.0


# ---- RGBT234 / VTUAV / RGBT210 ---------------------------------------------------------------
def test_rgbt234_twenty_pixels_inclusive_and_sequence_mean(tmp_path):
    gts = {"a": [GT], "b": [GT] * 3}
    got = run(tmp_path, "rgbt234", gts, {"a": [shifted(GT, 12, 16)], "b": [FAR] * 3})  # error exactly 20
    assert got["MPR"] == 50.0  # pooled frames: 25; strict < 20: 0


def test_rgbt234_msr_is_the_mean_of_21_thresholds(tmp_path):
    got = run(tmp_path, "rgbt234", {"s": [[0, 0, 100, 100]]}, {"s": [[0, 0, 100, 99]]})  # IoU 0.99
    assert got["MSR"] == pytest.approx(100 * 20 / 21)  # a trapezoid would give ~97.5


def test_rgbt234_first_frame_not_replaced_but_rgbt210_replaces_it(tmp_path):
    gts = {"s": [GT, GT]}
    res = {"s": [FAR, GT]}
    assert run(tmp_path / "a", "rgbt234", gts, res)["MPR"] == 50.0
    assert run(tmp_path / "b", "rgbt210", gts, res) == {"PR": 100.0, "SR": pytest.approx(100 * 20 / 21)}


def test_vtuav_takes_every_tenth_result_row(tmp_path):
    gts = {"s": ([GT, shifted(GT, 30), shifted(GT, 60)],) * 2}
    rows = [FAR] * 21
    rows[0], rows[10], rows[20] = GT, shifted(GT, 30), shifted(GT, 60)
    got = run(tmp_path, "vtuav", gts, {"s": rows}, prefixed=True)
    assert got["MPR"] == 100.0  # rows 0, 1, 2 would give 33.3
    with pytest.raises(CKDError, match="needs at least 21"):
        run(tmp_path / "short", "vtuav", gts, {"s": rows[:20]})


def test_zero_size_and_nan_predictions(tmp_path):
    centre = [GT[0] + GT[2] / 2, GT[1] + GT[3] / 2]
    rows = [[*centre, 0, 0], [math.nan] * 4, GT, GT]
    gt = np.array([GT] * 4, dtype=float)
    err, ov = fused_errors(np.array(rows, dtype=float), (gt, gt))
    assert err[0] == 0.0 and ov[0] == 0.0  # zero-size box: centre hit, no overlap
    assert math.isnan(err[1]) and math.isnan(ov[1])  # NaN row fails every test
    got = run(tmp_path, "rgbt234", {"s": [GT] * 4}, {"s": rows})
    assert got["MPR"] == 75.0 and got["MSR"] == pytest.approx(100 * 2 / 4 * 20 / 21)


def test_nan_ground_truth_in_one_modality_uses_the_other():
    gt_v = np.array([GT, GT], dtype=float)
    gt_i = np.array([[math.nan] * 4, GT], dtype=float)
    err, ov = fused_errors(np.array([GT, GT], dtype=float), (gt_v, gt_i))
    assert err.tolist() == [0.0, 0.0] and ov.tolist() == [1.0, 1.0]


def test_zero_area_ground_truth_is_scored_not_skipped(tmp_path):
    # RGBT234 has no invalid-GT rule: IoU 0 (or NaN for 0/0) and the centre error still counts
    gts = {"s": [GT, [30, 20, 0, 0]]}
    got = run(tmp_path, "rgbt234", gts, {"s": [GT, [30, 20, 0, 0]]})
    assert got["MPR"] == 100.0 and got["MSR"] == pytest.approx(50 * 20 / 21)


# ---- LasHeR --------------------------------------------------------------------------------
def test_lasher_replaces_the_first_row(tmp_path):
    got = run(tmp_path, "lasher", {"s": [GT, GT]}, {"s": [FAR, GT]}, sep=",")
    assert got["PR"] == 100.0 and got["NPR"] == 100.0


def test_lasher_invalid_ground_truth_hits_precision_misses_success(tmp_path):
    gts = {"s": [GT, [0, 10, 40, 20], GT, [10, 10, 40, -1]]}  # x = 0 and h < 0 are invalid
    got = run(tmp_path, "lasher", gts, {"s": [GT, FAR, GT, FAR]})
    assert got["PR"] == pytest.approx(100.0) and got["NPR"] == pytest.approx(100.0)  # excluding them: 100 too
    assert got["SR"] == pytest.approx(50 * 20 / 21)  # excluded frames would give 95.2


def test_lasher_repairs_invalid_rows_from_the_previous_row(tmp_path):
    rows = [GT, shifted(GT, 3), [700, 700, 0, 5], [math.nan] * 4, [800, 800, 30, -2]]
    got = run(tmp_path, "lasher", {"s": [GT] * 5}, {"s": rows})
    assert got["PR"] == pytest.approx(100.0)  # unrepaired rows would be misses: 40


def test_lasher_repair_uses_the_trackers_own_first_row(tmp_path):
    # row 2 is invalid and copies row 1 as the tracker wrote it (FAR), before row 1 becomes the GT
    got = run(tmp_path, "lasher", {"s": [GT, GT]}, {"s": [FAR, [1, 1, 0, 0]]})
    assert got["PR"] == pytest.approx(50.0)


def test_lasher_drops_all_zero_curves_before_averaging(tmp_path):
    bad = [0, 5, 40, 20]  # x = 0: every frame invalid -> SR curve all zero, PR curve all ones
    gts = {"a": [bad] * 3, "b": [GT] * 3}
    got = run(tmp_path, "lasher", gts, {"a": [FAR] * 3, "b": [GT] * 3})
    assert got["SR"] == pytest.approx(100 * 20 / 21)  # averaging sequence a in would halve it
    assert got["PR"] == pytest.approx(100.0)


def test_lasher_normalised_precision(tmp_path):
    gt = [10, 10, 100, 50]
    got = run(tmp_path, "lasher", {"s": [gt] * 3}, {"s": [gt, shifted(gt, 19), shifted(gt, 0, 11)]})
    # errors 19 px and 11 px are PR hits; normalised 0.19 is an NPR hit, 11/50 = 0.22 a miss
    assert got["PR"] == pytest.approx(100.0) and got["NPR"] == pytest.approx(200 / 3)


def test_lasher_frame_errors_keep_toolkit_order():
    anno = np.array([[10, 10, 100, 50], [10, 10, 100, 50]], dtype=float)
    res = np.array([[0, 0, 1, 1], [29, 21, 100, 50]], dtype=float)
    err, nerr, ov = lasher_frame_errors(res, anno)
    assert err[0] == 0 and err[1] == pytest.approx(math.hypot(19, 11))
    assert nerr[1] == pytest.approx(math.hypot(0.19, 0.22)) and ov[0] == 1.0


# ---- result files --------------------------------------------------------------------------
def test_mixed_delimiters_crlf_and_no_final_newline(tmp_path):
    gt_dir = make_dataset(tmp_path / "gt", "rgbt234", {"s": ([GT] * 3, [GT] * 3)})
    res = tmp_path / "res" / "T"
    res.mkdir(parents=True)
    (res / "s.txt").write_bytes(b"10,10\t40 20\r\n\r\n 10.0 ,  10.0,40.0,20\r\n1.0e+01\t1e1\t4e1,2e1")
    assert evaluate(gt_dir, res, "rgbt234")["MPR"] == 100.0


@pytest.mark.parametrize("content,match", [
    ("", "is empty"),
    ("10 10 40 20\n", "needs at least 3"),
    ("10 10 40 20 1\n" * 3, "5 values per line"),
    ("10 10 40 20\n10 10 40\n10 10 40 20\n", "line 2 has 3 values"),
    ("10 10 40 20\n10 10 40\n10 10 40 20 20\n", "line 2 has 3 values"),  # 12 values, misaligned rows
    ("10 10 40 20\n10 ten 40 20\n10 10 40 20\n", "not a number"),
])
def test_bad_result_files_raise_clear_errors(tmp_path, content, match):
    gt_dir = make_dataset(tmp_path / "gt", "rgbt234", {"s": ([GT] * 3, [GT] * 3)})
    res = tmp_path / "res" / "T"
    res.mkdir(parents=True)
    (res / "s.txt").write_text(content)
    with pytest.raises(CKDError, match=match):
        evaluate(gt_dir, res, "rgbt234")


def test_longer_results_are_truncated(tmp_path):
    got = run(tmp_path, "rgbt234", {"s": [GT] * 2}, {"s": [GT, GT, FAR, FAR]})
    assert got["MPR"] == 100.0


def test_result_file_names(tmp_path):
    gt_dir = make_dataset(tmp_path / "gt", "lasher", {"a": ([GT], [GT]), "b": ([GT], [GT])})
    res = tmp_path / "Foo_tracking_result"
    _write(res / "a.txt", [GT], ",")
    _write(res / "Foo_b.txt", [GT], "\t")  # the folder's name without _tracking_result
    _write(res / "b.txt.bak", [FAR], ",")
    _write(res / "a_time.txt", [[0.01]])
    assert evaluate(gt_dir, res, "lasher")["PR"] == pytest.approx(100.0)
    (res / "Foo_b.txt").unlink()
    with pytest.raises(CKDError, match=r"no result file for 1 of 2 sequences \('b'\).*Foo_<seq>.txt"):
        evaluate(gt_dir, res, "lasher")


def test_unknown_protocol_is_a_clear_error(tmp_path):
    with pytest.raises(CKDError, match="unknown dataset/protocol 'otb'"):
        evaluate(tmp_path, tmp_path, "otb")
