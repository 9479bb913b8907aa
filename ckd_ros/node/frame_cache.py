"""Recent synchronised pairs, so `~/set_target` can start on the frame the user drew the box on.

Pairs are kept by RGB stamp for `max_age_s` seconds of stamp time, and at most `max_pairs` pairs
and `max_bytes` bytes of message data (4K streams on an 8 GB Jetson cannot exhaust memory); the
oldest go first. Lookup accepts either stream's stamp (a box drawn on the thermal overlay carries
the thermal stamp), exactly or within a tolerance.

Pinned pairs (`pin`) stay findable for `pin_s` seconds of wall time whatever the stream does: a
picker that froze a frame pins it, so the selection succeeds however long the user takes to draw.
At most `MAX_PINS` pins are kept (the oldest pin is released first).
"""
from __future__ import annotations

import bisect
import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

MAX_PAIRS = 120  # 2 s at 60 Hz
MAX_PINS = 4


def message_bytes(msg: Any) -> int:
    data = getattr(msg, "data", b"")
    try:
        return len(data)
    except TypeError:
        return 0


@dataclass
class FramePair:
    rgb: Any  # sensor_msgs/Image or CompressedImage, untouched
    thermal: Any
    rgb_stamp_ns: int
    thermal_stamp_ns: int  # as the driver stamped it (sync.thermal_offset is not added)
    paired_at: float  # time.monotonic() when the synchroniser emitted it
    sync_wait_s: float = 0.0  # emission time minus arrival of the earlier message
    seq: int = field(default=0, compare=False)
    nbytes: int = field(default=-1, compare=False)

    def __post_init__(self) -> None:
        if self.nbytes < 0:
            self.nbytes = message_bytes(self.rgb) + message_bytes(self.thermal)

    def matches(self, stamp_ns: int) -> str:
        if self.rgb_stamp_ns == stamp_ns:
            return "rgb"
        if self.thermal_stamp_ns == stamp_ns:
            return "thermal"
        return ""

    def distance(self, stamp_ns: int) -> int:
        return min(abs(self.rgb_stamp_ns - stamp_ns), abs(self.thermal_stamp_ns - stamp_ns))


class FrameCache:
    def __init__(self, max_age_s: float = 2.0, max_pairs: int = MAX_PAIRS, max_bytes: Optional[int] = None,
                 pin_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._stamps: List[int] = []  # sorted RGB stamps
        self._pairs: List[FramePair] = []
        self._bytes = 0
        self._pins: collections.OrderedDict = collections.OrderedDict()  # rgb stamp -> (pair, expiry)
        self._clock = clock
        self.max_age_s = float(max_age_s)
        self.max_pairs = int(max_pairs)
        self.max_bytes = max_bytes
        self.pin_s = float(pin_s)
        self.evicted_bytes = 0  # pairs dropped early for the byte bound (diagnostics)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pairs)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def add(self, pair: FramePair) -> None:
        with self._lock:
            i = bisect.bisect_right(self._stamps, pair.rgb_stamp_ns)
            self._stamps.insert(i, pair.rgb_stamp_ns)
            self._pairs.insert(i, pair)
            self._bytes += pair.nbytes
            self._trim()

    def _trim(self) -> None:
        if not self._stamps:
            return
        oldest_kept = self._stamps[-1] - int(self.max_age_s * 1e9)
        cut = bisect.bisect_left(self._stamps, oldest_kept)
        cut = max(cut, len(self._stamps) - self.max_pairs)
        if self.max_bytes is not None:
            total = self._bytes - sum(p.nbytes for p in self._pairs[:cut])
            while total > self.max_bytes and cut < len(self._pairs) - 1:  # the newest pair always stays
                total -= self._pairs[cut].nbytes
                cut += 1
                self.evicted_bytes += 1
        if cut > 0:
            self._bytes -= sum(p.nbytes for p in self._pairs[:cut])
            del self._stamps[:cut]
            del self._pairs[:cut]

    def set_limits(self, max_age_s: Optional[float] = None, max_bytes: Optional[int] = None,
                   pin_s: Optional[float] = None) -> None:
        with self._lock:
            if max_age_s is not None:
                self.max_age_s = float(max_age_s)
            if max_bytes is not None:
                self.max_bytes = int(max_bytes)
            if pin_s is not None:
                self.pin_s = float(pin_s)
            self._trim()

    def set_max_age(self, max_age_s: float) -> None:
        self.set_limits(max_age_s=max_age_s)

    def clear(self) -> None:
        """Forget the stream (time jump, deactivate); pins stay until they expire."""
        with self._lock:
            self._stamps.clear()
            self._pairs.clear()
            self._bytes = 0

    def newest(self) -> Optional[FramePair]:
        with self._lock:
            return self._pairs[-1] if self._pairs else None

    def span(self) -> Optional[Tuple[int, int]]:
        """(oldest, newest) RGB stamps in ns, for error messages."""
        with self._lock:
            return (self._stamps[0], self._stamps[-1]) if self._stamps else None

    # ---- pins --------------------------------------------------------------------------------------
    def _expire_pins(self) -> None:
        now = self._clock()
        for key in [k for k, (_, expiry) in self._pins.items() if expiry <= now]:
            del self._pins[key]

    def pin(self, stamp_ns: int, tolerance_ns: int = 0) -> Tuple[Optional[FramePair], str]:
        """Keep the pair `stamp_ns` (0: newest) findable for `pin_s` s; returns (pair, how) like `find`."""
        if stamp_ns == 0:
            pair, how = self.newest(), "newest"
        else:
            pair, how = self.find(stamp_ns, tolerance_ns)
        if pair is None:
            return None, ""
        with self._lock:
            self._expire_pins()
            self._pins.pop(pair.rgb_stamp_ns, None)
            self._pins[pair.rgb_stamp_ns] = (pair, self._clock() + self.pin_s)
            while len(self._pins) > MAX_PINS:
                self._pins.popitem(last=False)
        return pair, how

    def pinned(self) -> List[int]:
        with self._lock:
            self._expire_pins()
            return list(self._pins)

    # ---- lookup ------------------------------------------------------------------------------------
    def find(self, stamp_ns: int, tolerance_ns: int = 0) -> Tuple[Optional[FramePair], str]:
        """The pair whose RGB or thermal stamp equals `stamp_ns`, else the nearest within tolerance.

        Cached and pinned pairs are searched. Returns (pair, how) with how in 'rgb', 'thermal',
        'nearest' or '' when nothing matched.
        """
        with self._lock:
            self._expire_pins()
            candidates = self._pairs + [p for p, _ in self._pins.values()]
            best, best_d = None, None
            for pair in candidates:
                how = pair.matches(stamp_ns)
                if how:
                    return pair, how
                d = pair.distance(stamp_ns)
                if best_d is None or d < best_d:
                    best, best_d = pair, d
            if best is not None and best_d <= tolerance_ns:
                return best, "nearest"
            return None, ""

    def newer_than(self, stamp_ns: int) -> List[FramePair]:
        with self._lock:
            i = bisect.bisect_right(self._stamps, stamp_ns)
            return list(self._pairs[i:])


def pick_catchup(pairs: List[FramePair], max_steps: int) -> List[FramePair]:
    """At most `max_steps` pairs, evenly spread, always ending on the newest.

    Catching up through every cached frame would cost seconds with slow inference; the tracker's
    search region (4x the box) tolerates the larger motion between sampled frames.
    """
    if len(pairs) <= max_steps:
        return list(pairs)
    if max_steps <= 1:
        return [pairs[-1]]
    n = len(pairs)
    idx = sorted({round(k * (n - 1) / (max_steps - 1)) for k in range(max_steps)})
    return [pairs[i] for i in idx]
