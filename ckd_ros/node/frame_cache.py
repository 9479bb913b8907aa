"""Recent synchronised pairs, so `~/set_target` can start on the frame the user drew the box on.

Pairs are kept by RGB stamp for `init_cache_s` seconds of stamp time (at most `max_pairs`, which
bounds memory at high rates). Lookup accepts either stream's stamp (a box drawn on the thermal
overlay carries the thermal stamp), exactly or within a tolerance.
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

MAX_PAIRS = 120  # 2 s at 60 Hz; ~200 MB of 640x512 RGB + 16-bit thermal messages at most


@dataclass
class FramePair:
    rgb: Any  # sensor_msgs/Image or CompressedImage, untouched
    thermal: Any
    rgb_stamp_ns: int
    thermal_stamp_ns: int
    paired_at: float  # time.monotonic() when the synchroniser emitted it
    sync_wait_s: float = 0.0  # emission time minus arrival of the earlier message
    seq: int = field(default=0, compare=False)


class FrameCache:
    def __init__(self, max_age_s: float = 2.0, max_pairs: int = MAX_PAIRS) -> None:
        self._lock = threading.Lock()
        self._stamps: List[int] = []  # sorted RGB stamps
        self._pairs: List[FramePair] = []
        self.max_age_s = float(max_age_s)
        self.max_pairs = int(max_pairs)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pairs)

    def add(self, pair: FramePair) -> None:
        with self._lock:
            i = bisect.bisect_right(self._stamps, pair.rgb_stamp_ns)
            self._stamps.insert(i, pair.rgb_stamp_ns)
            self._pairs.insert(i, pair)
            self._trim()

    def _trim(self) -> None:
        if not self._stamps:
            return
        oldest_kept = self._stamps[-1] - int(self.max_age_s * 1e9)
        cut = bisect.bisect_left(self._stamps, oldest_kept)
        cut = max(cut, len(self._stamps) - self.max_pairs)
        if cut > 0:
            del self._stamps[:cut]
            del self._pairs[:cut]

    def set_max_age(self, max_age_s: float) -> None:
        with self._lock:
            self.max_age_s = float(max_age_s)
            self._trim()

    def clear(self) -> None:
        with self._lock:
            self._stamps.clear()
            self._pairs.clear()

    def newest(self) -> Optional[FramePair]:
        with self._lock:
            return self._pairs[-1] if self._pairs else None

    def span(self) -> Optional[Tuple[int, int]]:
        """(oldest, newest) RGB stamps in ns, for error messages."""
        with self._lock:
            return (self._stamps[0], self._stamps[-1]) if self._stamps else None

    def find(self, stamp_ns: int, tolerance_ns: int = 0) -> Tuple[Optional[FramePair], str]:
        """The pair whose RGB or thermal stamp equals `stamp_ns`, else the nearest within tolerance.

        Returns (pair, how) with how in 'rgb', 'thermal', 'nearest' or '' when nothing matched.
        """
        with self._lock:
            best, best_d = None, None
            for pair in self._pairs:
                if pair.rgb_stamp_ns == stamp_ns:
                    return pair, "rgb"
                if pair.thermal_stamp_ns == stamp_ns:
                    return pair, "thermal"
                d = min(abs(pair.rgb_stamp_ns - stamp_ns), abs(pair.thermal_stamp_ns - stamp_ns))
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
