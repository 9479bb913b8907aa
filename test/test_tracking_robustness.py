"""Inputs that break trackers in the field: non-finite network outputs (an FP16 engine that overflows),
degenerate or absurd boxes (one check for every box entering the system), crops bounded in memory."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ckd_ros.boxes import MAX_BOX_TO_FRAME, check_box
from ckd_ros.cli import main
from ckd_ros.errors import BoxError, CKDError
from ckd_ros.runtime.base import Backend
from ckd_ros.tracking import Tracker, TrackerParams, TrackState, preprocess
from ckd_ros.tracking.postprocess import maps_finite
from ckd_ros.tracking.preprocess import sample_target

BOX = [140.0, 100.0, 40.0, 40.0]  # crop 160 px -> search 256 px: one of 16 cells = 10 px
RIGHT = (8, 11)  # 30 px to the right


class MapsBackend(Backend):
    """Each frame: ('ok', cell) -> a clean peak at `cell` (score 0.8); ('bad', where, value) -> the same
    maps with `value` (NaN/inf) written into map `where` ('score', 'size', 'offset' or 'all')."""

    name = "maps"

    def __init__(self, script):
        super().__init__()
        self.script = list(script)

    def infer(self, z_rgb, z_tir, x_rgb, x_tir):
        step = self.script.pop(0)
        score = np.full((1, 1, 16, 16), 1e-3, np.float32)
        cell = step[1] if step[0] == "ok" else (8, 8)
        score[0, 0, cell[0], cell[1]] = 0.8
        maps = {"score_map": score, "size_map": np.full((1, 2, 16, 16), 0.25, np.float32),  # 40 image px
                "offset_map": np.zeros((1, 2, 16, 16), np.float32)}
        if step[0] == "bad":
            _, where, value = step
            for key in maps:
                if where == "all" or key.startswith(where):
                    maps[key] = maps[key].copy()
                    maps[key][0, 0, 3, 4] = value  # one cell is enough (not the selected one)
        return maps


def frames(h=240, w=320):
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (h, w, 3), np.uint8), rng.integers(0, 256, (h, w), np.uint8)


@pytest.mark.parametrize("where, value", [("all", np.nan), ("score", np.inf), ("size", -np.inf),
                                          ("offset", np.nan)])
def test_nonfinite_maps_never_move_the_track(where, value):
    rgb, tir = frames()
    backend = MapsBackend([("ok", RIGHT), ("bad", where, value), ("bad", where, value), ("ok", RIGHT)])
    tracker = Tracker(backend, TrackerParams())  # official loop: LOST off
    tracker.initialize(rgb, tir, BOX)
    good = tracker.track(rgb, tir)
    assert good.box_xywh[0] == pytest.approx(BOX[0] + 30, abs=1e-3) and not good.nonfinite
    for n in (1, 2):
        r = tracker.track(rgb, tir)
        assert r.nonfinite and r.score == 0.0 and r.state is TrackState.TRACKING  # 2 < lost_frames (5)
        np.testing.assert_array_equal(r.box_xywh, good.box_xywh)  # the last good box, not the corner
        np.testing.assert_array_equal(tracker.box, good.box_xywh)  # the next search stays there
        assert tracker.nonfinite_frames == n
    after = tracker.track(rgb, tir)  # finite again: tracking continues from the last good box
    assert after.box_xywh[0] == pytest.approx(good.box_xywh[0] + 30, abs=1e-3)
    assert after.state is TrackState.TRACKING and tracker.nonfinite_frames == 2


def test_nonfinite_frames_count_towards_lost_even_with_lost_off():
    rgb, tir = frames()
    tracker = Tracker(MapsBackend([("bad", "all", np.nan)] * 3 + [("ok", (8, 8))]), TrackerParams(lost_frames=3))
    tracker.initialize(rgb, tir, BOX)
    states = [tracker.track(rgb, tir).state for _ in range(3)]
    assert states == [TrackState.TRACKING, TrackState.TRACKING, TrackState.LOST]
    np.testing.assert_array_equal(tracker.box, BOX)
    assert tracker.track(rgb, tir).state is TrackState.TRACKING
    with_lost = Tracker(MapsBackend([("ok", RIGHT), ("bad", "all", np.nan)]),
                        TrackerParams(lost_threshold=0.5, lost_frames=1))
    with_lost.initialize(rgb, tir, BOX)
    first = with_lost.track(rgb, tir)
    r = with_lost.track(rgb, tir)
    assert r.state is TrackState.LOST and np.array_equal(r.box_xywh, first.box_xywh)


def test_maps_finite():
    ok = np.zeros((1, 1, 4, 4), np.float32)
    assert maps_finite(ok, ok, ok)
    bad = ok.copy()
    bad[0, 0, 1, 2] = np.inf
    assert not maps_finite(ok, bad, ok)


def test_ckd_track_reports_nonfinite_frames_and_writes_no_nan(tmp_path, monkeypatch, capsys):
    import ckd_ros.tracking.cli as track_cli

    for sub in ("visible", "infrared"):
        (tmp_path / "seq" / sub).mkdir(parents=True)
    rgb, tir = frames()
    for i in range(6):
        cv2.imwrite(str(tmp_path / "seq" / "visible" / f"{i}.png"), rgb)
        cv2.imwrite(str(tmp_path / "seq" / "infrared" / f"{i}.png"), tir)
    script = [("ok", (8, 8)), ("bad", "all", np.nan), ("bad", "all", np.nan), ("ok", (8, 8)), ("bad", "size", np.inf)]
    monkeypatch.setattr(track_cli, "_open_backend", lambda args: MapsBackend(script))
    out = tmp_path / "r.txt"
    assert main(["track", "--sequence", str(tmp_path / "seq"), "--init", ",".join(map(str, BOX)), "--out", str(out),
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert '"nonfinite_frames": 3' in captured.out and "NaN/inf maps on 3 frames" in captured.err
    text = out.read_text()
    assert "nan" not in text.lower() and "inf" not in text.lower()
    assert np.isfinite(np.loadtxt(out)).all() and len(text.splitlines()) == 6


# ---- boxes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("box, match", [
    ([1, 2, 3], "4 numbers"),
    (["a", 1, 2, 3], "4 numbers"),
    ([1, 2, math.inf, 4], "NaN or inf"),
    ([10, 10, 0, 5], "zero or negative size"),
    ([320, 10, 5, 5], "outside the 320x240 image"),  # starts at the right edge: no overlap
    ([-5, 10, 5, 5], "outside"),  # ends at the left edge
    ([160 - 100000, 120 - 100000, 200000, 200000], "larger than 2x"),  # centre inside, absurd size
    ([0, 0, 10, 2 * 240 + 1], "larger than 2x"),
])
def test_check_box_refuses(box, match):
    with pytest.raises(BoxError, match=match) as info:
        check_box(box, 320, 240)
    assert isinstance(info.value, ValueError) and isinstance(info.value, CKDError)
    assert "\n" not in str(info.value)


def test_check_box_accepts_partly_outside_and_the_size_limit():
    assert check_box(np.array([-10, -10, 20, 20]), 320, 240) == [-10.0, -10.0, 20.0, 20.0]
    assert check_box([300, 200, 50, 60], 320, 240) == [300.0, 200.0, 50.0, 60.0]  # centre outside, overlaps
    assert check_box([0, 0, MAX_BOX_TO_FRAME * 320, MAX_BOX_TO_FRAME * 240], 320, 240)[2] == 640.0


def test_every_entry_point_uses_the_box_check(tmp_path, capsys):
    """--init, a dataset's init.txt and ckd benchmark's first GT box: one line, exit 2, no allocation."""
    seq = tmp_path / "RGBT234" / "seq0"
    for sub in ("visible", "infrared"):
        (seq / sub).mkdir(parents=True)
    rgb, tir = frames(64, 80)
    for i in range(2):
        cv2.imwrite(str(seq / "visible" / f"{i}.png"), rgb[:64, :80])
        cv2.imwrite(str(seq / "infrared" / f"{i}.png"), tir[:64, :80])
    huge = "-50000,-50000,100000,100000"
    for f in ("init.txt", "visible.txt", "infrared.txt"):
        (seq / f).write_text(huge + "\n" + huge + "\n")
    (tmp_path / "RGBT234" / "SequencesName.txt").write_text("seq0\n")
    onnx = ["--onnx", "engines/demo_small.onnx", "--backend", "onnxruntime", "--device", "cpu", "--threads", "1"]
    for args in (["track", "--sequence", str(seq), "--out", str(tmp_path / "a.txt")],
                 ["track", "--sequence", str(seq), "--init", "10,10,0,4", "--out", str(tmp_path / "b.txt")],
                 ["benchmark", "--dataset", "rgbt234", "--root", str(tmp_path / "RGBT234"), "--results",
                  str(tmp_path / "res"), "--out", str(tmp_path / "ev"), "--no-plots"]):
        assert main(args + onnx + ["--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "frame 0" in err, err
        assert ("larger than 2x the 80x64 frame" in err) or ("zero or negative size" in err)


def test_crops_are_bounded_in_memory_by_construction(monkeypatch):
    img = np.random.default_rng(1).integers(0, 256, (256, 320, 3), np.uint8)
    # the canvas of this crop would be ~11 TB: it must not be built
    crop, factor = sample_target(img, [160 - 1e6, 128 - 1e6, 2e6, 2e6], 2.0, 128)
    assert crop.shape == (128, 128, 3) and factor == pytest.approx(128 / 4e6)
    # the bounded path samples the same positions as the padded resize: compare where both apply
    smooth = cv2.GaussianBlur(img, (0, 0), 6)
    box = [40.0, 30.0, 300.0, 220.0]  # crop reaches past every edge (padding on all sides)
    exact, f1 = sample_target(smooth, box, 4.0, 256)
    monkeypatch.setattr(preprocess, "MAX_CANVAS_BYTES", 1024)
    bounded, f2 = sample_target(smooth, box, 4.0, 256)
    assert f1 == f2 and bounded.shape == exact.shape
    diff = np.abs(bounded.astype(int) - exact.astype(int))
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 2
