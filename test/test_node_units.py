"""The node's ROS-free parts: parameter table and validation, frame cache, latest-wins slot,
set_target box handling, diagnostics, overlays, select_target's drag logic, the params file."""
from __future__ import annotations

import pathlib
import threading
import time

import numpy as np
import pytest
import yaml

from ckd_ros.node import diagnostics as diag
from ckd_ros.node import params as P
from ckd_ros.node.frame_cache import FrameCache, FramePair, pick_catchup
from ckd_ros.node.latest_slot import LatestSlot
from ckd_ros.node.overlay import rgb_overlay, thermal_overlay
from ckd_ros.node.select_target import box_from_points
from ckd_ros.node.target import FrameInfo, TargetError, TargetRequest, box_to_rgb
from ckd_ros.tracking import Registration

REPO = pathlib.Path(__file__).resolve().parents[1]


# ---- parameters --------------------------------------------------------------------------------

def test_params_file_documents_every_parameter_with_its_default():
    data = yaml.safe_load((REPO / "config" / "ckd_tracker.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == {s.name for s in P.SPECS}
    for spec in P.SPECS:
        assert values[spec.name] == spec.default, spec.name
        assert type(values[spec.name]) is type(spec.default), f"{spec.name}: YAML type differs from the declared one"
    assert P.validate(values, {}, check_when=False) is None


def test_defaults_validate():
    assert P.validate(P.defaults(), {}, check_when=False) is None


@pytest.mark.parametrize("changes,needle", [
    ({"sync.slop": 2.0}, "sync.slop: 2.0 is outside [0.0, 1.0]"),
    ({"sync.slop": 0.0}, "sync.slop: must be > 0"),
    ({"qos.reliability": "sometimes"}, "not one of best_effort, reliable"),
    ({"thermal.normalization": "fixed"}, "lo < hi"),  # fixed needs a range
    ({"thermal.percentiles": [1.0]}, "expected 2 numbers"),
    ({"thermal.percentiles": [99.0, 1.0]}, "lo < hi"),
    ({"registration.homography": [0.0] * 9}, "homography"),
    ({"registration.homography": [1.0, 0.0, 0.0]}, "expected 9 numbers"),
    ({"tracking.lost_threshold": 1.5}, "outside [0.0, 1.0]"),
    ({"tracking.lost_frames": 0}, "outside [1, 1000]"),
    ({"nonsense": 1}, "unknown parameter"),
])
def test_invalid_values_rejected_with_reason(changes, needle):
    reason = P.validate(changes, P.defaults(), "active")
    assert reason is not None and needle in reason


def test_fixed_normalisation_accepted_with_its_range_in_one_change():
    ok = {"thermal.normalization": "fixed", "thermal.range": [7000.0, 9000.0]}
    assert P.validate(ok, P.defaults(), "active") is None


@pytest.mark.parametrize("name,value,state,allowed", [
    ("model.checkpoint", "/x.pth", "unconfigured", True),
    ("model.checkpoint", "/x.pth", "inactive", False),
    ("backend", "torch", "active", False),
    ("qos.reliability", "reliable", "inactive", True),
    ("qos.reliability", "reliable", "active", False),
    ("sync.queue_size", 20, "active", False),
    ("sync.slop", 0.05, "active", True),
    ("debug.overlay", False, "active", True),
    ("autostart", False, "unconfigured", False),
])
def test_lifecycle_rules(name, value, state, allowed):
    reason = P.validate({name: value}, P.defaults(), state)
    assert (reason is None) == allowed, reason


def test_descriptors_carry_ranges_and_read_only():
    pytest.importorskip("rcl_interfaces", reason="rcl_interfaces (ROS 2) not on the path")
    d = P.descriptor(P.SPEC_BY_NAME["sync.slop"])
    assert d.floating_point_range[0].from_value == 0.0 and d.floating_point_range[0].to_value == 1.0
    d = P.descriptor(P.SPEC_BY_NAME["qos.depth"])
    assert d.integer_range[0].from_value == 1 and d.integer_range[0].to_value == 100
    assert P.descriptor(P.SPEC_BY_NAME["autostart"]).read_only
    assert "read-only after configure" in P.descriptor(P.SPEC_BY_NAME["backend"]).additional_constraints


def test_lost_threshold_zero_means_never_lost():
    values = dict(P.defaults(), **{"tracking.lost_threshold": 0.0})
    assert not P.make_tracker_params(values).lost_enabled


# ---- frame cache / slot ---------------------------------------------------------------------------

def pair(ns: int, tir_offset: int = 1000) -> FramePair:
    return FramePair(rgb=ns, thermal=ns, rgb_stamp_ns=ns, thermal_stamp_ns=ns + tir_offset, paired_at=0.0)


def test_frame_cache_age_limit_and_lookup():
    cache = FrameCache(max_age_s=0.5, max_pairs=100)
    for k in range(20):
        cache.add(pair(k * 100_000_000))  # 10 Hz
    assert len(cache) == 6  # 1.4 .. 1.9 s
    assert cache.find(1_500_000_000)[1] == "rgb"
    assert cache.find(1_500_001_000)[1] == "thermal"
    assert cache.find(1_500_000_500, tolerance_ns=1000)[1] == "nearest"
    assert cache.find(1_000_000_000)[0] is None  # aged out
    assert [p.rgb_stamp_ns for p in cache.newer_than(1_700_000_000)] == [1_800_000_000, 1_900_000_000]


def test_frame_cache_pair_limit():
    cache = FrameCache(max_age_s=10.0, max_pairs=5)
    for k in range(12):
        cache.add(pair(k))
    assert len(cache) == 5 and cache.newest().rgb_stamp_ns == 11


def test_pick_catchup_ends_on_newest():
    pairs = [pair(k) for k in range(50)]
    picked = pick_catchup(pairs, 8)
    assert len(picked) == 8 and picked[-1] is pairs[-1] and picked[0] is pairs[0]
    assert pick_catchup(pairs[:3], 8) == pairs[:3]


def test_latest_slot_drops_older_pairs_and_runs_commands_first():
    slot = LatestSlot()
    assert not slot.put("a")
    assert slot.put("b") and slot.put("c")
    slot.put_command("cmd")
    assert slot.take(0.1) == ("command", "cmd")
    assert slot.take(0.1) == ("pair", "c")
    assert slot.dropped == 2
    assert slot.take(0.01) == ("timeout", None)


def test_latest_slot_close_wakes_waiter_and_returns_pending_commands():
    slot = LatestSlot()
    got = []
    t = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    t.start()
    time.sleep(0.05)
    assert slot.close() == []
    t.join(2.0)
    assert got == [("closed", None)]
    assert not slot.put_command("late")


# ---- set_target box handling ----------------------------------------------------------------------

RGB = FrameInfo(640, 512, "rgb_frame")
TIR = FrameInfo(320, 256, "tir_frame")
REG = Registration([2.0, 0, 0, 0, 2.0, 0, 0, 0, 1.0])


def test_box_in_rgb_pixels_by_empty_or_rgb_frame():
    for frame in ("", "rgb_frame"):
        box, which = box_to_rgb(TargetRequest((10, 20, 30, 40), 0, frame), RGB, TIR, REG)
        assert which == "rgb" and box.tolist() == [10, 20, 30, 40]


def test_box_in_thermal_pixels_goes_through_the_homography():
    box, which = box_to_rgb(TargetRequest((10, 20, 30, 40), 0, "tir_frame"), RGB, TIR, REG)
    assert which == "thermal"
    np.testing.assert_allclose(box, [20, 40, 60, 80])


@pytest.mark.parametrize("req,needle", [
    (TargetRequest((600, 10, 50, 10), 0, ""), "exceeds the RGB image width 640"),
    (TargetRequest((10, 500, 5, 20), 0, ""), "exceeds the RGB image height 512"),
    (TargetRequest((300, 10, 30, 10), 0, "tir_frame"), "exceeds the thermal image width 320"),
    (TargetRequest((10, 10, 0, 10), 0, ""), "zero-size"),
    (TargetRequest((10, 10, 5, 5), 0, "lidar"), "neither the RGB frame"),
])
def test_bad_boxes_say_what_is_wrong(req, needle):
    with pytest.raises(TargetError, match=needle):
        box_to_rgb(req, RGB, TIR, REG)


# ---- diagnostics ------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_reporter_logs_once_then_throttles_with_count():
    clock, lines = FakeClock(), []
    rep = diag.BadInputReporter(lines.append, throttle_s=10.0, clock=clock)
    for _ in range(5):
        rep.report("encoding", "rgb: unsupported encoding 'x'")
    assert lines == ["rgb: unsupported encoding 'x'"]
    clock.t += 11
    rep.report("encoding", "rgb: unsupported encoding 'x'")
    assert lines[-1].endswith("(4 more since the last report)")
    rep.report("short_data", "other problem")
    assert len(lines) == 3 and rep.totals() == {"encoding": 6, "short_data": 1}
    clock.t += 6
    assert rep.recent(5.0) == []


def test_assess_levels():
    clock = FakeClock()
    stats = diag.NodeStats(clock=clock)
    assert diag.assess(stats.snapshot(), [], "inactive", "idle")[0] == diag.WARN
    assert diag.assess(stats.snapshot(), [], "unconfigured", "idle", error="configure failed: x") == (
        diag.ERROR, "configure failed: x")
    stats.arrival("rgb", 1)
    stats.arrival("thermal", 1)
    stats.paired()
    assert diag.assess(stats.snapshot(), [], "active", "tracking")[0] == diag.OK
    clock.t += 3.0
    stats.arrival("rgb", 2)  # thermal silent for 3 s
    level, msg = diag.assess(stats.snapshot(), [], "active", "tracking")
    assert level == diag.WARN and "thermal stream stalled" in msg
    stats.arrival("thermal", 2_000_000_000)  # flows again, but never pairs
    level, msg = diag.assess(stats.snapshot(), [], "active", "tracking", slop_s=0.03)
    assert level == diag.WARN and "no pair formed" in msg and "sync.slop" in msg
    stats.paired()
    level, msg = diag.assess(stats.snapshot(), [("encoding", "bad encoding", 3)], "active", "tracking")
    assert level == diag.WARN and "bad encoding" in msg


def test_key_values_have_counters_latencies_and_unmatched():
    stats = diag.NodeStats()
    for _ in range(3):
        stats.arrival("rgb", 1)
    stats.arrival("thermal", 1)
    stats.paired()
    stats.count("pairs_dropped", 2)
    stats.processed({"inference": 12.0, "total": 20.0})
    kv = dict(diag.key_values(stats.snapshot(), {"state": "tracking"}, {"encoding": 2}))
    assert kv["unmatched_rgb"] == "2" and kv["unmatched_thermal"] == "0"
    assert kv["pairs_dropped"] == "2" and kv["bad_input.encoding"] == "2"
    assert kv["latency_inference_ms"].startswith("mean 12.0")


# ---- overlays and select_target ----------------------------------------------------------------------

def test_overlays_draw_in_bgr_and_leave_input_untouched():
    rgb = np.zeros((64, 80, 3), np.uint8)
    out = rgb_overlay(rgb, (10, 10, 20, 20), 0.9, "tracking", 12.0, "target")
    assert out.shape == (64, 80, 3) and out[30, 20].tolist() == [0, 255, 0] and rgb.max() == 0
    tir = np.full((32, 40, 3), 128, np.uint8)
    out = thermal_overlay(tir, (5, 5, 10, 10), "lost")
    assert out.shape == (32, 40, 3)


def test_drag_box_scaled_and_clipped():
    assert box_from_points((20, 40), (220, 140), 2.0, 640, 512) == (10, 20, 100, 50)
    assert box_from_points((220, 140), (20, 40), 2.0, 640, 512) == (10, 20, 100, 50)  # any direction
    assert box_from_points((600, 500), (700, 600), 1.0, 640, 512) == (600, 500, 40, 12)
    assert box_from_points((5, 5), (7, 7), 1.0, 640, 512) is None


# the picker (TargetSelector, requests, no-display behaviour): test_node_select_target.py


def test_detection_message_fields():
    pytest.importorskip("vision_msgs", reason="vision_msgs (ROS 2) not on the path")
    from std_msgs.msg import Header

    from ckd_ros.node.detections import build_detections, detection_box

    header = Header(frame_id="cam")
    arr = build_detections(header, (10.0, 20.0, 30.0, 40.0), 0.7, "person", "3")
    det = arr.detections[0]
    assert detection_box(det) == (10.0, 20.0, 30.0, 40.0)
    assert det.results[0].hypothesis.class_id == "person" and det.id == "3" and arr.header.frame_id == "cam"
    assert build_detections(header, None, 0.0, "person", "3").detections == []
