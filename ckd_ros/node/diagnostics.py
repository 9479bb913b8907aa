"""Counters, per-stage latency windows, throttled bad-input reports, and the /diagnostics status.

Everything is thread-safe: the executor thread counts arrivals and pairs, the worker records
stage latencies and bad input, the 1 Hz timer reads a snapshot.
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
            self._processed_times: collections.deque = collections.deque(maxlen=240)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

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
           error: Optional[str] = None, slop_s: float = 0.0) -> Tuple[int, str]:
    """Diagnostic level and one-line message from a stats snapshot."""
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
    if all(received.values()) and (snapshot["since_pair"] is None or snapshot["since_pair"] > STALE_S):
        stamps = snapshot["last_stamp_ns"]
        gap = abs(stamps["rgb"] - stamps["thermal"]) / 1e9
        problems.append(f"both streams flow but no pair formed for {STALE_S:.0f} s: last stamps differ by "
                        f"{gap:.3f} s, sync.slop is {slop_s:.3f} s")
    for _key, message, _count in bad_recent:
        problems.append(message)
    if not any(received.values()):
        problems.append("waiting for images")
    if problems:
        return WARN, "; ".join(problems)
    return OK, f"{target_state}, {snapshot['fps']:.1f} fps"


def key_values(snapshot: Dict, extra: Dict[str, str], bad_totals: Dict[str, int]) -> List[Tuple[str, str]]:
    """Flat (key, value) list for DiagnosticStatus.values."""
    out = list(extra.items())
    out.append(("fps", f"{snapshot['fps']:.2f}"))
    counters = snapshot["counters"]
    for name in ("rgb_received", "thermal_received", "pairs_received", "pairs_processed", "pairs_dropped",
                 "pairs_rejected", "pairs_stale", "stamp_resets", "detections_published", "catchup_published",
                 "overlays_published"):
        out.append((name, str(counters.get(name, 0))))
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


def build_array(stamp, name: str, hardware_id: str, level: int, message: str, values: List[Tuple[str, str]]):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: PLC0415

    status = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=k, value=v) for k, v in values]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
