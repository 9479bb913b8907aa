"""Counters, per-stage latency windows, throttled bad-input reports, and the /diagnostics status.

Everything is thread-safe: the executor thread counts arrivals and pairs, the worker records
stage latencies, drops (one counter per reason: `dropped.<reason>`) and errors (one per stage:
`errors.<stage>`), the 1 Hz diagnostics task reads a snapshot. `assess` turns a snapshot into a
level and one line; it is never OK while a target is set and no detection is being published.
`make_updater` publishes through ROS's `diagnostic_updater` (status name `<fully qualified node
name>: tracker`, hardware_id = the fully qualified name, so several trackers stay apart).
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

STAGES = ("sync_wait", "queue", "decode", "preprocess", "inference", "postprocess", "publish", "total",
          "stamp_to_publish")
STREAMS = ("rgb", "thermal")
STALE_S = 2.0  # a stream silent this long while the other one flows is reported (WARN)
NO_OUTPUT_S = 2.0  # a target set and no detection published for this long is reported (WARN)
BAD_INPUT_RECENT_S = 5.0  # bad input within this window keeps the status at WARN

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels


class LatencyWindow:
    """The last `size` samples of one stage (ms)."""

    def __init__(self, size: int = 200) -> None:
        self.samples: collections.deque = collections.deque(maxlen=size)

    def add(self, ms: float) -> None:
        self.samples.append(float(ms))

    def summary(self) -> Optional[Tuple[float, float, float]]:
        """(mean, p50, p99) or None when empty."""
        if not self.samples:
            return None
        arr = np.fromiter(self.samples, dtype=np.float64)
        return float(arr.mean()), float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


class NodeStats:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.counters: Dict[str, int] = collections.defaultdict(int)
            self.latency = {s: LatencyWindow() for s in STAGES}
            self.last_arrival: Dict[str, Optional[float]] = {s: None for s in STREAMS}
            self.last_stamp_ns: Dict[str, Optional[int]] = {s: None for s in STREAMS}
            self.last_pair_at: Optional[float] = None
            self.last_detection_at: Optional[float] = None
            self._processed_times: collections.deque = collections.deque(maxlen=240)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def drop(self, reason: str) -> None:
        """A pair that was not tracked, by reason (superseded, out_of_order, conversion, ...)."""
        self.count(f"dropped.{reason}")

    def error(self, stage: str) -> None:
        """A failure in one stage (conversion, thermal, inference, target, ...)."""
        self.count(f"errors.{stage}")

    def detection(self) -> None:
        with self._lock:
            self.counters["detections_published"] += 1
            self.last_detection_at = self._clock()

    def arrival(self, stream: str, stamp_ns: int) -> None:
        with self._lock:
            self.counters[f"{stream}_received"] += 1
            self.last_arrival[stream] = self._clock()
            self.last_stamp_ns[stream] = stamp_ns

    def paired(self) -> None:
        with self._lock:
            self.counters["pairs_received"] += 1
            self.last_pair_at = self._clock()

    def processed(self, stage_ms: Dict[str, float]) -> None:
        with self._lock:
            self.counters["pairs_processed"] += 1
            self._processed_times.append(self._clock())
            for stage, ms in stage_ms.items():
                if stage in self.latency:
                    self.latency[stage].add(ms)

    def fps(self) -> float:
        with self._lock:
            return self._fps_locked()

    def _fps_locked(self) -> float:
        times = [t for t in self._processed_times if self._clock() - t <= 2.0]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)

    def snapshot(self) -> Dict:
        with self._lock:
            now = self._clock()
            return {
                "counters": dict(self.counters),
                "latency": {s: w.summary() for s, w in self.latency.items()},
                "age": {s: (None if t is None else now - t) for s, t in self.last_arrival.items()},
                "last_stamp_ns": dict(self.last_stamp_ns),
                "since_pair": None if self.last_pair_at is None else now - self.last_pair_at,
                "since_detection": None if self.last_detection_at is None else now - self.last_detection_at,
                "fps": self._fps_locked(),
            }


class BadInputReporter:
    """One log line per kind of problem, then at most one per `throttle_s` with the count in between."""

    def __init__(self, log: Callable[[str], None], throttle_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._throttle_s = throttle_s
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [count, last message, last seen, last logged, suppressed since last log]
        self._entries: Dict[str, list] = {}

    def report(self, key: str, message: str) -> bool:
        with self._lock:
            now = self._clock()
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = [0, message, now, None, 0]
            entry[0] += 1
            entry[1], entry[2] = message, now
            if entry[3] is not None and now - entry[3] < self._throttle_s:
                entry[4] += 1
                return False
            suppressed, entry[3], entry[4] = entry[4], now, 0
        suffix = f" ({suppressed} more since the last report)" if suppressed else ""
        self._log(message + suffix)
        return True

    def recent(self, window_s: float = BAD_INPUT_RECENT_S) -> List[Tuple[str, str, int]]:
        """(key, last message, total count) of problems seen within `window_s`."""
        with self._lock:
            now = self._clock()
            return [(k, e[1], e[0]) for k, e in self._entries.items() if now - e[2] <= window_s]

    def totals(self) -> Dict[str, int]:
        with self._lock:
            return {k: e[0] for k, e in self._entries.items()}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def assess(snapshot: Dict, bad_recent: List[Tuple[str, str, int]], lifecycle: str, target_state: str,
           error: Optional[str] = None, slop_s: float = 0.0, pairing: Optional[str] = None,
           target_since_s: Optional[float] = None) -> Tuple[int, str]:
    """Diagnostic level and one-line message from a stats snapshot.

    `pairing`: why few pairs form (input_sync.explain_pairing), if known. `target_since_s`: how
    long ago the current target was set (None: no target). Never OK while a target is set and no
    detection has been published for NO_OUTPUT_S.
    """
    if error:
        return ERROR, error
    if lifecycle != "active":
        return WARN, f"node {lifecycle}: not processing images"
    problems = []
    ages = snapshot["age"]
    received = {s: ages[s] is not None and ages[s] <= STALE_S for s in STREAMS}
    for stream in STREAMS:
        other = "thermal" if stream == "rgb" else "rgb"
        if received[other] and not received[stream]:
            what = "no image yet" if ages[stream] is None else f"no image for {ages[stream]:.1f} s"
            problems.append(f"{stream} stream stalled ({what}); detections stop until it returns")
    if pairing:
        problems.append(pairing)
    elif all(received.values()) and (snapshot["since_pair"] is None or snapshot["since_pair"] > STALE_S):
        stamps = snapshot["last_stamp_ns"]
        gap = abs(stamps["rgb"] - stamps["thermal"]) / 1e9
        problems.append(f"both streams flow but no pair formed for {STALE_S:.0f} s: last stamps differ by "
                        f"{gap:.3f} s, sync.slop is {slop_s:.3f} s")
    for _key, message, _count in bad_recent:
        problems.append(message)
    if not any(received.values()):
        problems.append("waiting for images")
    if target_state != "idle" and target_since_s is not None and target_since_s > NO_OUTPUT_S:
        since = snapshot.get("since_detection")
        if since is None or since > NO_OUTPUT_S:
            what = "none yet" if since is None else f"none for {since:.1f} s"
            problems.insert(0, f"target set but no detection published ({what})")
    if problems:
        return WARN, "; ".join(problems)
    return OK, f"{target_state}, {snapshot['fps']:.1f} fps"


def key_values(snapshot: Dict, extra: Dict[str, str], bad_totals: Dict[str, int]) -> List[Tuple[str, str]]:
    """Flat (key, value) list for DiagnosticStatus.values."""
    out = list(extra.items())
    out.append(("fps", f"{snapshot['fps']:.2f}"))
    counters = snapshot["counters"]
    for name in ("rgb_received", "thermal_received", "pairs_received", "pairs_processed", "stamp_resets",
                 "detections_published", "catchup_published", "overlays_published"):
        out.append((name, str(counters.get(name, 0))))
    for name in sorted(counters):
        if name.startswith(("dropped.", "errors.", "sync.", "qos.", "stamps.")):
            out.append((name, str(counters[name])))
    paired = counters.get("pairs_received", 0)
    for stream in STREAMS:
        # messages that never made it into a pair (still queued ones included)
        out.append((f"unmatched_{stream}", str(max(counters.get(f"{stream}_received", 0) - paired, 0))))
    for stage, summary in snapshot["latency"].items():
        if summary is None:
            continue
        mean, p50, p99 = summary
        out.append((f"latency_{stage}_ms", f"mean {mean:.1f} p50 {p50:.1f} p99 {p99:.1f}"))
    for stream in STREAMS:
        age = snapshot["age"][stream]
        out.append((f"{stream}_last_age_s", "never" if age is None else f"{age:.2f}"))
    for key, count in sorted(bad_totals.items()):
        out.append((f"bad_input.{key}", str(count)))
    return out


class _StatusWrapper:
    """The part of diagnostic_updater.DiagnosticStatusWrapper the node uses (fallback only)."""

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticStatus  # noqa: PLC0415

        self.status = DiagnosticStatus()

    def summary(self, level, message: str) -> None:
        self.status.level, self.status.message = level, message

    def add(self, key: str, value: str) -> None:
        from diagnostic_msgs.msg import KeyValue  # noqa: PLC0415

        self.status.values.append(KeyValue(key=key, value=str(value)))


class _FallbackUpdater:
    """diagnostic_updater.Updater's interface for runtimes without the package (the Humble wheel):
    one 1 Hz timer publishing every task's status to /diagnostics."""

    def __init__(self, node, period: float = 1.0, callback_group=None) -> None:
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: PLC0415

        self.node = node
        self.node_name = node.get_name()
        self.hwid = ""
        self._tasks: List[Tuple[str, Callable]] = []
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 1)
        self.timer = node.create_timer(period, self.update, callback_group=callback_group)

    def setHardwareID(self, hwid: str) -> None:  # noqa: N802 - diagnostic_updater's name
        self.hwid = hwid

    def add(self, name: str, fn: Callable) -> None:
        self._tasks.append((name, fn))

    def force_update(self) -> None:
        self.update()

    def update(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: PLC0415

        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        for name, fn in self._tasks:
            stat = _StatusWrapper()
            stat.status.name, stat.status.hardware_id = f"{self.node_name}: {name}", self.hwid
            fn(stat)
            array.status.append(stat.status)
        self._pub.publish(array)


def level_bytes(level: int) -> bytes:
    return bytes([level])


def make_updater(node, task: str, fill: Callable, callback_group=None):
    """A diagnostic_updater.Updater (fallback: same interface) publishing `fill(stat)` once a second.

    The status is named `<fully qualified node name>: <task>` and its hardware_id is that fully
    qualified name, so trackers in different namespaces (or one process) never share a status.
    """
    fqn = node.get_fully_qualified_name()
    try:
        import diagnostic_updater  # noqa: PLC0415 - ships with ROS 2, missing from the Humble wheel
    except ImportError:
        updater = _FallbackUpdater(node, callback_group=callback_group)
    else:
        try:  # no anonymous "Node starting up" status: every status carries the hardware_id
            updater = diagnostic_updater.Updater(node, period=1.0, starting_up_status=None)
        except TypeError:  # older diagnostic_updater without the argument
            updater = diagnostic_updater.Updater(node, period=1.0)
        if callback_group is not None:  # its own group: a slow status never blocks the default group
            updater.timer.cancel()
            node.destroy_timer(updater.timer)
            updater.timer = node.create_timer(updater.period, updater.update, callback_group=callback_group)
    updater.node_name = fqn
    updater.setHardwareID(fqn)
    updater.add(task, fill)
    return updater
