"""Every bad input of the contract: the node keeps running, says what is wrong once (throttled),
diagnostics show it, and the next good pair is tracked."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from test_node_support import Harness, MovingTarget, make_context, shutdown_context, wait_for

from ckd_ros.frames.ros_image import array_to_image_msg

pytestmark = pytest.mark.ros

NEVER_LOST = {"tracking.lost_threshold": 0.0}
STEP_NS = 50_000_000


class Session:
    """One tracking node with a target, a stamp clock and a spy on its bad-input log lines."""

    def __init__(self, ctx) -> None:
        self.h = Harness(ctx, overrides=NEVER_LOST)
        self.scene = MovingTarget()
        self.k = 0
        self.t = time.time_ns()
        self.lines = []
        self._lock = threading.Lock()
        original = self.h.node.reporter._log

        def spy(line):
            with self._lock:
                self.lines.append(line)
            original(line)

        self.h.node.reporter._log = spy  # our own reporter, not rclpy: count the lines it writes
        assert wait_for(lambda: self.h.node.lifecycle_state == "active", 30.0)

    def next_stamp(self) -> int:
        self.t += STEP_NS
        return self.t

    def frames(self):
        self.k += 1
        return self.scene.frame(self.k)

    def good_pair_tracked(self, timeout: float = 10.0) -> int:
        """Publish good pairs until one of them comes back as a non-empty detection; returns its stamp."""
        sent = set()
        found = []

        def check():
            for d in self.h.dets_since(0)[-20:]:
                s = d.header.stamp.sec * 10**9 + d.header.stamp.nanosec
                if s in sent and d.detections:
                    found.append(s)
                    return True
            rgb, tir = self.frames()
            stamp = self.next_stamp()
            self.h.publish_pair(rgb, tir, stamp)
            sent.add(stamp)
            return False

        assert wait_for(check, timeout, 0.05), "the next good pair was not tracked"
        return found[0]

    def lines_with(self, text: str) -> list:
        with self._lock:
            return [line for line in self.lines if text in line]

    def close(self) -> None:
        self.h.close()


@pytest.fixture(scope="module")
def session():
    ctx = make_context()
    s = Session(ctx)
    for _ in range(3):
        rgb, tir = s.frames()
        s.h.publish_pair(rgb, tir, s.next_stamp())
        time.sleep(0.05)
    assert wait_for(lambda: len(s.h.node.cache) >= 2, 10.0)
    res = s.h.set_target(s.scene.box(s.k))
    assert res.success, res.status_message
    s.good_pair_tracked()
    yield s
    s.close()
    shutdown_context(ctx)


def _bad_rgb_encoding(s):
    rgb, tir = s.frames()
    msg = array_to_image_msg(rgb, "rgb8")
    msg.encoding = "nv21"  # planar YUV: refused (bayer_* and 16-bit colour are accepted)
    return dict(rgb_msg=msg, tir=tir)


def _short_data(s):
    rgb, tir = s.frames()
    msg = array_to_image_msg(rgb, "rgb8")
    msg.data = bytes(msg.data)[: msg.step * msg.height // 2]
    return dict(rgb_msg=msg, tir=tir)


def _zero_size(s):
    rgb, _ = s.frames()
    msg = array_to_image_msg(np.zeros((1, 1), np.uint16), "mono16")
    msg.width = msg.height = msg.step = 0
    msg.data = b""
    return dict(rgb=rgb, tir_msg=msg)


def _size_mismatch(s):
    rgb, tir = s.frames()
    return dict(rgb=rgb, tir=tir[::2, ::2].copy())


CASES = [  # (reporter key, bad pair, log text, stage counted in dropped.<stage> and errors.<stage>)
    ("encoding", _bad_rgb_encoding, "unsupported encoding 'nv21'", "conversion"),
    ("short_data", _short_data, "expected step*height", "conversion"),
    ("zero_size", _zero_size, "zero-size image", "conversion"),
    ("size_mismatch", _size_mismatch, "registration.homography is the identity", "registration"),
]


def _publish(s, parts, stamp):
    s.h.publish_pair(parts.get("rgb"), parts.get("tir"), stamp, rgb_msg=_stamped(parts.get("rgb_msg"), stamp),
                     tir_msg=_stamped(parts.get("tir_msg"), stamp))


def _stamped(msg, stamp):
    if msg is not None:
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp // 10**9, stamp % 10**9
        msg.header.frame_id = "camera_rgb" if msg.encoding != "mono16" else "camera_thermal"
    return msg


@pytest.mark.parametrize("key,make,text,stage", CASES, ids=[c[0] for c in CASES])
def test_rejected_pair_logged_once_shown_in_diagnostics_then_recovers(session, key, make, text, stage):
    s = session
    before = s.h.node.reporter.totals().get(key, 0)
    stage_before = s.h.node.stats.snapshot()["counters"].get(f"errors.{stage}", 0)
    for _ in range(4):
        _publish(s, make(s), s.next_stamp())
        time.sleep(0.03)
    assert wait_for(lambda: s.h.node.reporter.totals().get(key, 0) >= before + 4, 10.0), \
        f"{key}: bad pairs not all seen ({s.h.node.reporter.totals()})"
    assert len(s.lines_with(text)) == 1, f"{key}: expected one log line, got {s.lines_with(text)}"
    values = s.h.wait_diag(lambda v: int(v.get(f"bad_input.{key}", 0)) >= before + 4 and text in v["_message"])
    assert values["_level"] == 1 and text in values["_message"], values.get("_message")
    assert int(values[f"dropped.{stage}"]) >= stage_before + 4 and int(values[f"errors.{stage}"]) >= stage_before + 4
    s.good_pair_tracked()


def test_nan_thermal_pixels_warned_and_still_tracked(session):
    s = session
    rgb, tir = s.frames()
    temps = tir.astype(np.float32) / 100.0
    temps[:5, :5] = np.nan
    temps[10, 10] = np.inf
    stamp = s.next_stamp()
    start = s.h.n_dets()
    s.h.publish_pair(rgb, temps, stamp, tir_encoding="32FC1")
    assert wait_for(lambda: any(d.header.stamp.sec * 10**9 + d.header.stamp.nanosec == stamp
                                for d in s.h.dets_since(start)), 10.0), "a pair with a few NaN pixels is tracked"
    assert len(s.lines_with("26 of")) == 1 and "NaN/inf" in s.lines_with("26 of")[0]
    values = s.h.wait_diag(lambda v: int(v.get("bad_input.nonfinite", 0)) >= 1)
    assert "NaN/inf" in values["_message"]
    # all pixels NaN: the pair is skipped, the next one tracked
    s.h.publish_pair(rgb, np.full_like(temps, np.nan), s.next_stamp(), tir_encoding="32FC1")
    assert wait_for(lambda: s.lines_with("all "), 10.0)
    s.good_pair_tracked()


def test_palette_thermal_warns_once_and_tracks(session):
    s = session
    warnings = []
    worker = s.h.node._worker
    original = worker._warn
    worker._warn = lambda m: (warnings.append(m), original(m))
    for _ in range(3):
        rgb, tir = s.frames()
        gray = (tir // 40).astype(np.uint8)
        s.h.publish_pair(rgb, np.dstack([gray, gray // 2, gray // 3]), s.next_stamp(), tir_encoding="bgr8")
        time.sleep(0.05)
    assert wait_for(lambda: len(warnings) >= 1, 10.0)
    time.sleep(0.3)
    assert len(warnings) == 1 and "palette" in warnings[0]
    s.good_pair_tracked()


def test_stamps_going_backwards_reset_the_synchroniser(session):
    s = session
    s.good_pair_tracked()
    resets = s.h.node.stats.snapshot()["counters"].get("stamp_resets", 0)
    s.t -= 100 * 10**9  # bag loop: back 100 s
    first_back = s.next_stamp() + STEP_NS
    stamp = s.good_pair_tracked()
    assert stamp >= first_back, "pairs after the loop must be tracked (synchroniser reset)"
    counters = s.h.node.stats.snapshot()["counters"]
    assert counters["stamp_resets"] >= resets + 1
    assert len(s.lines_with("stamps jumped back 99.9")) == 1
    values = s.h.wait_diag(lambda v: "stamps jumped back" in v["_message"])
    assert values["_level"] == 1 and "sync.reorder_window" in values["_message"]


def test_thermal_stream_stops_warns_and_builds_no_backlog(session):
    s = session
    s.good_pair_tracked()
    start = s.h.n_dets()
    t_end = time.monotonic() + 3.5
    rgb_only = []
    while time.monotonic() < t_end:  # RGB keeps coming, thermal is gone
        rgb, _ = s.frames()
        stamp = s.next_stamp()
        msg = array_to_image_msg(rgb, "rgb8")
        s.h.rgb_pub.publish(_stamped(msg, stamp))
        rgb_only.append(stamp)
        time.sleep(0.05)
    values = s.h.wait_diag(lambda v: "thermal stream stalled" in v["_message"], 5.0)
    assert values["_level"] == 1 and "thermal stream stalled" in values["_message"]
    assert s.h.n_dets() - start <= 1, "detections must stop without thermal images"
    # bounded by time: sync.max_delay (0.5 s) of 20 Hz RGB, the older ones counted as dropped
    assert s.h.node.sync.queue_lengths()[0] <= 0.5 * 20 + 2, "bounded queues"
    assert int(values["sync.dropped.no_partner_rgb"]) >= 40
    stamp = s.good_pair_tracked()
    assert stamp not in rgb_only
    later = [d for d in s.h.dets_since(start) if d.detections]
    assert all(d.header.stamp.sec * 10**9 + d.header.stamp.nanosec not in rgb_only[:-1] for d in later), \
        "no backlog: RGB frames from the outage must not be processed afterwards"


def test_set_target_before_any_frame():
    ctx = make_context()
    # own namespace: the module's shared tracker (same domain, same name) may still be alive
    h = Harness(ctx, overrides=NEVER_LOST, namespace="fresh")
    try:
        assert wait_for(lambda: h.node.lifecycle_state == "active", 30.0)
        res = h.set_target((10, 10, 20, 20))
        assert not res.success and res.status_message.startswith("no frames yet")
        values = h.wait_diag(lambda v: "set_target rejected: no frames yet" in v["_message"])
        assert values["_level"] == 1
        scene = MovingTarget()
        h.stream(scene, rate_hz=20.0)
        assert wait_for(lambda: len(h.node.cache) >= 2, 10.0)
        assert h.set_target(scene.box(h.published[max(h.published)])).success, "the node keeps serving"
    finally:
        h.close()
        shutdown_context(ctx)
