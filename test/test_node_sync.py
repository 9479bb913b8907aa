"""The time-sized synchroniser without ROS: pairing under arrival delay, stamp offsets, zero and
frozen stamps, reordering versus real time jumps, drop reasons, and the diagnosis that tells an
arrival delay (raise sync.max_delay) from a clock offset (set sync.thermal_offset)."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from ckd_ros.node.input_sync import TimeSync, explain_pairing, input_topics


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def msg(stamp_ns: int, tag: str = ""):
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=stamp_ns // 10**9,
                                                                        nanosec=stamp_ns % 10**9)), tag=tag)


class Rig:
    """A TimeSync with recorded pairs, jumps and stamp reports on a fake clock."""

    def __init__(self, **kw) -> None:
        self.clock = Clock()
        self.pairs, self.jumps, self.issues = [], [], []
        kw = dict(dict(slop_s=0.03, max_delay_s=0.5), **kw)
        self.sync = TimeSync(on_pair=self.pairs.append, on_jump=lambda *a: self.jumps.append(a),
                             on_stamp_issue=lambda k, m: self.issues.append((k, m)), clock=self.clock, **kw)

    def events(self, events):
        """[(arrival_s, stream, stamp_ns)] in any order; played in arrival order."""
        for when, stream, stamp in sorted(events, key=lambda e: e[0]):
            self.clock.t = 100.0 + when
            self.sync.add(stream, msg(stamp, f"{stream}{stamp}"))


def rates(dur, rgb_hz=30.0, tir_hz=9.0, tir_latency=0.0, tir_stamp_shift=0.0, base=10**12):
    """RGB at rgb_hz, thermal at tir_hz captured on one clock; thermal delivered late and/or mis-stamped."""
    ev = [(k / rgb_hz, "rgb", base + int(k / rgb_hz * 1e9)) for k in range(int(dur * rgb_hz))]
    ev += [(j / tir_hz + 0.013 + tir_latency, "thermal", base + int((j / tir_hz + 0.013 - tir_stamp_shift) * 1e9))
           for j in range(int(dur * tir_hz))]
    return ev


@pytest.mark.parametrize("latency", [0.0, 0.2, 0.4])
def test_late_thermal_pairs_every_frame_with_default_max_delay(latency):
    rig = Rig()
    rig.events(rates(6.0, tir_latency=latency))
    n_tir = int(6.0 * 9)
    assert len(rig.pairs) >= n_tir - 1
    for p in rig.pairs:  # each thermal frame with its nearest RGB frame
        assert abs(p.rgb_stamp_ns - p.thermal_stamp_ns) <= 17_000_000
    assert explain_pairing(rig.sync.diagnose(), 0.03, 0.5) is None
    d = rig.sync.diagnose(full=True)
    assert d["pair_ratio"] > 0.9 and d["stamp_match"] > 0.8 and abs(d["arrival_delay_s"] - latency) < 0.03


def test_queue_too_short_is_told_apart_and_names_max_delay():
    rig = Rig(max_delay_s=0.1)
    rig.events(rates(4.0, tir_latency=0.4))
    assert len(rig.pairs) <= 2
    d = rig.sync.diagnose()
    assert d["stamp_match"] > 0.7 and 0.35 < d["arrival_delay_s"] < 0.45
    text = explain_pairing(d, 0.03, 0.1)
    assert "queue too short" in text and "raise sync.max_delay to at least 0.5" in text
    assert "thermal_offset" not in text
    assert rig.sync.dropped["no_partner_rgb"] > 50


def test_stamp_offset_is_told_apart_and_thermal_offset_fixes_it():
    rig = Rig()
    rig.events(rates(4.0, tir_stamp_shift=5.0))  # thermal driver's clock 5 s behind, delivered on time
    assert len(rig.pairs) == 0
    text = explain_pairing(rig.sync.diagnose(), 0.03, 0.5)
    assert "different clocks" in text and "max_delay" not in text
    assert 4.95 < float(re.search(r"sync.thermal_offset to ([-\d.]+)", text).group(1)) < 5.05
    fixed = Rig(thermal_offset_s=5.0)
    fixed.events(rates(4.0, tir_stamp_shift=5.0))
    assert len(fixed.pairs) >= 35
    p = fixed.pairs[-1]
    assert abs(p.rgb_stamp_ns - (p.thermal_stamp_ns + 5 * 10**9)) <= 17_000_000  # stamps kept as published


def test_zero_and_frozen_stamps_pair_by_arrival_and_are_reported():
    rig = Rig()
    rig.events([(k * 0.05 + dt, s, 0) for k in range(20) for dt, s in ((0.0, "rgb"), (0.01, "thermal"))])
    assert len(rig.pairs) == 20
    assert [p.rgb.tag for p in rig.pairs] == ["rgb0"] * 20 and not rig.jumps
    assert {k for k, _ in rig.issues} == {"stamps_zero"}
    assert "rgb header.stamp is 0" in rig.issues[0][1]
    frozen = Rig()
    frozen.events([(k * 0.05 + dt, s, 5 * 10**9) for k in range(10) for dt, s in ((0.0, "rgb"), (0.01, "thermal"))])
    assert len(frozen.pairs) == 10
    assert any(k == "stamps_repeated" and "did not advance (5.000000000 again)" in m for k, m in frozen.issues)


def test_reordering_within_the_window_is_kept_a_real_jump_resets():
    rig = Rig()
    order = []
    for k in range(40):
        order.append(k + 1 if k % 8 == 0 else (k - 1 if k % 8 == 1 else k))
    ev = []
    for i, k in enumerate(order):
        ev += [(i * 0.05, "rgb", 10**12 + k * 50_000_000), (i * 0.05 + 0.005, "thermal", 10**12 + k * 50_000_000)]
    rig.events(ev)
    assert len(rig.pairs) == 40 and not rig.jumps
    assert rig.sync.stamp_events["reordered_rgb"] == 5
    t = 40 * 0.05
    rig.events([(t, "rgb", 10**12), (t + 0.005, "thermal", 10**12)])  # bag loop: 2 s back
    assert len(rig.jumps) == 1 and rig.jumps[0][0] == "rgb" and len(rig.pairs) == 41


def test_queues_are_bounded_by_time_and_drops_have_reasons():
    rig = Rig(max_delay_s=0.2)
    rig.events([(k / 30.0, "rgb", 10**12 + int(k / 30.0 * 1e9)) for k in range(90)])  # thermal camera down
    assert rig.sync.queue_lengths()[0] <= 7  # 0.2 s at 30 Hz
    assert rig.sync.dropped["no_partner_rgb"] >= 80


def test_runtime_reconfigure_changes_pairing():
    rig = Rig(slop_s=0.001)
    rig.events([(0.0, "rgb", 10**12), (0.01, "thermal", 10**12 + 10_000_000)])
    assert not rig.pairs
    rig.sync.configure(0.02, 0.5)
    rig.events([(0.02, "thermal", 10**12 + 10_000_001)])
    assert len(rig.pairs) == 1


def test_per_stream_transport_topics():
    assert input_topics(("raw", "raw")) == ("rgb/image", "thermal/image")
    assert input_topics(("compressed", "raw")) == ("rgb/image/compressed", "thermal/image")
