"""RGB/thermal pairing by header stamp: the node's synchroniser, framework-free (node, bags, tests).

`TimeSync` (no ROS) pairs each message with the other stream's message of the nearest stamp
within `slop`, once the other stream has delivered a stamp at or past its own (so the nearest
partner is known; message_filters' greedy policy pairs the first one within slop). Its queues
are sized by TIME: a message waits `max_delay` seconds (arrival time) for its partner, whatever
the two frame rates, so a thermal core delivering 0.4 s late pairs with default settings.
`thermal_offset` (s) is added to thermal stamps before pairing (drivers stamping with a constant
offset); pairs keep the stamps as published.

Time as drivers stamp it: a stamp older than the stream's newest by at most `reorder_window` is
reordering (multi-threaded drivers, network cameras) and is paired normally; an older one is a
time jump (bag loop, clock reset) and resets the queues (`on_jump`). Zero, equal or frozen stamps
pair by arrival order and are reported (`on_stamp_issue`, a WARN naming the stamps).

Every message that does not become a pair is counted by reason (`dropped`), and `diagnose()`
tells an arrival delay (queue too short: raise sync.max_delay) from a stamp offset (clocks differ:
set sync.thermal_offset). The node (node/input_sync.py) feeds it from rclpy subscriptions with the
monotonic clock; `frames.rosbag.BagPairs` feeds it a bag's messages in log order with the
recording time as the clock, so offline and online pairs are the same.
"""
from __future__ import annotations

import collections
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple


@dataclass
class SyncedPair:
    """One synchronised pair (the node uses its own FramePair with the same leading fields)."""

    rgb: Any
    thermal: Any
    rgb_stamp_ns: int
    thermal_stamp_ns: int  # as the driver stamped it (thermal_offset not added)
    paired_at: float  # clock() when the synchroniser emitted it
    sync_wait_s: float = 0.0  # emission time minus arrival of the earlier message
    seq: int = 0


STREAMS = ("rgb", "thermal")
MAX_QUEUE = 512  # hard cap per stream (frozen stamps at a high rate); max_delay normally bounds it first
HISTORY = 96  # (stamp, arrival) samples per stream kept for diagnose()
WINDOW_S = 3.0  # diagnose() looks at this much recent arrival time


def stamp_ns(msg) -> int:
    """header.stamp of a ROS message (rclpy or rosbags) as int nanoseconds."""
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


def fmt_stamp(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    return f"{sign}{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


class _Entry:
    __slots__ = ("key", "stamp", "msg", "arrival")

    def __init__(self, key: int, stamp: int, msg, arrival: float) -> None:
        self.key, self.stamp, self.msg, self.arrival = key, stamp, msg, arrival


class TimeSync:
    """Approximate-time pairing of two streams with queues sized in seconds (thread-safe).

    `on_pair(pair)` is called outside the lock on the adding thread. `on_jump(stream,
    last_ns, new_ns)` after a reset; `on_stamp_issue(key, message)` for zero/repeated stamps.
    Stamps are int nanoseconds; times are `clock()` seconds (monotonic; a bag's recording time).
    `make_pair(rgb_msg, thermal_msg, rgb_stamp_ns, thermal_stamp_ns, paired_at, sync_wait_s, seq)`
    builds the pair object (default `SyncedPair`; the node passes its FramePair).
    """

    def __init__(self, slop_s: float, max_delay_s: float, on_pair: Callable[[Any], None], *,
                 thermal_offset_s: float = 0.0, reorder_window_s: float = 0.5,
                 on_jump: Optional[Callable[[str, int, int], None]] = None,
                 on_stamp_issue: Optional[Callable[[str, str], None]] = None,
                 clock: Callable[[], float] = time.monotonic, make_pair: Callable[..., Any] = SyncedPair) -> None:
        self._lock = threading.Lock()
        self._make_pair = make_pair
        self._on_pair = on_pair
        self._on_jump = on_jump
        self._on_stamp_issue = on_stamp_issue
        self._clock = clock
        self.configure(slop_s, max_delay_s, thermal_offset_s, reorder_window_s)
        self._queues: Dict[str, collections.deque] = {s: collections.deque() for s in STREAMS}
        self._newest: Dict[str, Optional[int]] = {s: None for s in STREAMS}  # newest stamp per stream
        self._newest_key: Dict[str, Optional[int]] = {s: None for s in STREAMS}  # same, offset applied
        self._history: Dict[str, collections.deque] = {s: collections.deque(maxlen=HISTORY) for s in STREAMS}
        self._pair_times: collections.deque = collections.deque(maxlen=HISTORY)
        self.dropped: Dict[str, int] = collections.defaultdict(int)  # reason -> messages
        self.stamp_events: Dict[str, int] = collections.defaultdict(int)  # reordered/repeated/zero per stream
        self._seq = 0

    def configure(self, slop_s: float, max_delay_s: float, thermal_offset_s: float = 0.0,
                  reorder_window_s: float = 0.5) -> None:
        with self._lock:
            self.slop_ns = int(round(slop_s * 1e9))
            self.max_delay_s = float(max_delay_s)
            self.offset_ns = int(round(thermal_offset_s * 1e9))
            self.reorder_ns = int(round(reorder_window_s * 1e9))

    # ---- input -------------------------------------------------------------------------------------
    def add(self, stream: str, msg, stamp: Optional[int] = None):
        """Queue or pair one message; returns the pair it completed (also passed to on_pair)."""
        stamp = stamp_ns(msg) if stamp is None else stamp
        now = self._clock()
        other = "thermal" if stream == "rgb" else "rgb"
        key = stamp + (self.offset_ns if stream == "thermal" else 0)
        jump = issue = None
        with self._lock:
            last = self._newest[stream]
            if last is not None and stamp < last - self.reorder_ns:
                jump = (last, stamp)
                for s in STREAMS:
                    self.dropped[f"time_jump_{s}"] += len(self._queues[s])
                    self._queues[s].clear()
                    self._newest[s] = self._newest_key[s] = None
                    self._history[s].clear()
                last = None
            elif last is not None and stamp < last:
                self.stamp_events[f"reordered_{stream}"] += 1
            elif last is not None and stamp == last:
                self.stamp_events[f"repeated_{stream}"] += 1
                issue = ("stamps_repeated", f"{stream} header.stamp did not advance ({fmt_stamp(stamp)} again): "
                         "the driver repeats or freezes stamps; pairs are formed by arrival order and "
                         "set_target by stamp cannot tell these frames apart")
            if stamp == 0:
                self.stamp_events[f"zero_{stream}"] += 1
                issue = ("stamps_zero", f"{stream} header.stamp is 0 (the driver does not stamp frames): pairs are "
                         "formed by arrival order; fill header.stamp in the driver for exact pairing")
            self._newest[stream] = stamp if last is None else max(last, stamp)
            self._newest_key[stream] = key if last is None else max(self._newest_key[stream] or key, key)
            self._history[stream].append((key, now))
            self._expire(now)
            mine = self._queues[stream]
            mine.append(_Entry(key, stamp, msg, now))
            while len(mine) > MAX_QUEUE:
                mine.popleft()
                self.dropped[f"queue_full_{stream}"] += 1
            pairs = self._match(stream, other, now)
        if jump is not None and self._on_jump is not None:
            self._on_jump(stream, jump[0], jump[1])
        if issue is not None and self._on_stamp_issue is not None:
            self._on_stamp_issue(*issue)
        for pair in pairs:
            self._on_pair(pair)
        return pairs[-1] if pairs else None

    def _match(self, stream: str, other: str, now: float) -> List[Any]:
        """Pair every queued message whose best partner is known (under the lock).

        A message is decided once the other stream has delivered a stamp at or past its own (the
        nearest partner cannot arrive later, reordering aside); then it takes the nearest queued
        partner within slop (equal stamps: the latest arrival), unless that partner lies ahead of
        this stream and this stream's next frame is expected nearer to it (then it waits at most
        one frame period). The new message is decided first,
        then the other stream's messages that the new one made decidable.
        """
        pairs: List[Any] = []
        for s, o in ((stream, other), (other, stream)):
            passed = self._newest_key[o]
            if passed is None:
                continue
            for entry in [e for e in self._queues[s] if e.key <= passed]:
                if entry not in self._queues[s]:
                    continue
                partner = self._nearest(self._queues[o], entry.key)
                if partner is None or self._nearest(self._queues[s], partner.key) is not entry \
                        or self._better_may_come(s, entry, partner):
                    continue  # not mutually nearest yet, or a nearer frame is due
                self._queues[s].remove(entry)
                self._queues[o].remove(partner)
                rgb, tir = (entry, partner) if s == "rgb" else (partner, entry)
                self._seq += 1
                first = min(rgb.arrival, tir.arrival)
                pairs.append(self._make_pair(rgb.msg, tir.msg, rgb.stamp, tir.stamp, now, now - first, self._seq))
                self._pair_times.append(now)
        return pairs

    def _better_may_come(self, s: str, entry: _Entry, partner: _Entry) -> bool:
        """True while the partner lies past stream `s`'s newest stamp and `s`'s next message
        (newest + its frame period) is expected nearer to the partner than `entry` is."""
        newest = self._newest_key[s]
        period = self._period(s)
        if newest is None or partner.key <= newest or period is None:
            return False
        return abs(newest + period - partner.key) < abs(entry.key - partner.key)

    def _period(self, s: str) -> Optional[int]:
        keys = sorted(k for k, _ in list(self._history[s])[-9:])
        steps = [b - a for a, b in zip(keys, keys[1:]) if b > a]
        return int(statistics.median(steps)) if steps else None

    def _nearest(self, queue, key: int) -> Optional[_Entry]:
        best, best_d = None, None
        for e in queue:
            d = abs(e.key - key)
            if d > self.slop_ns:
                continue
            if best_d is None or d < best_d or (d == best_d and e.arrival >= best.arrival):
                best, best_d = e, d
        return best

    def _expire(self, now: float) -> None:
        limit = now - self.max_delay_s
        for s in STREAMS:
            q = self._queues[s]
            while q and q[0].arrival < limit:
                q.popleft()
                self.dropped[f"no_partner_{s}"] += 1

    def reset(self) -> None:
        """Empty the queues and forget the stamp order (both streams)."""
        with self._lock:
            for s in STREAMS:
                self._queues[s].clear()
                self._newest[s] = self._newest_key[s] = None
                self._history[s].clear()

    def queue_lengths(self) -> Tuple[int, int]:
        with self._lock:
            return len(self._queues["rgb"]), len(self._queues["thermal"])

    # ---- diagnosis -----------------------------------------------------------------------------------
    def diagnose(self, full: bool = False) -> Dict[str, Optional[float]]:
        """What recent arrivals say about pairing (thermal relative to RGB); the stamp figures only
        when few pairs form (or `full`).

        - `pair_ratio`: pairs per message of the slower stream over the last WINDOW_S (None: no data);
        - `stamp_match`: fraction of recent thermal messages with an RGB stamp within slop;
        - `arrival_delay_s`: median arrival of a thermal message after its stamp-matched RGB partner
          (negative: thermal first); a value beyond max_delay means the queue is too short;
        - `stamp_offset_s`: median (RGB stamp - thermal stamp) of messages that arrived closest in
          time: the sync.thermal_offset that would make the stamps agree when clocks differ.
        """
        with self._lock:
            now = self._clock()
            hist = {s: [(k, a) for k, a in self._history[s] if now - a <= WINDOW_S] for s in STREAMS}
            pairs = sum(1 for t in self._pair_times if now - t <= WINDOW_S)
            slop = self.slop_ns
        out: Dict[str, Optional[float]] = {"pair_ratio": None, "stamp_match": None, "arrival_delay_s": None,
                                           "stamp_offset_s": None}
        rgb, tir = hist["rgb"], hist["thermal"]
        if not rgb or not tir:
            return out
        out["pair_ratio"] = pairs / max(min(len(rgb), len(tir)), 1)
        if out["pair_ratio"] >= 0.5 and not full:
            return out  # pairing works: skip the O(n^2) stamp analysis (called once a second)
        delays, offsets, matched = [], [], 0
        for key, arr in tir:
            k_best = min(rgb, key=lambda e: abs(e[0] - key))
            if abs(k_best[0] - key) <= slop:
                matched += 1
                delays.append(arr - k_best[1])
            a_best = min(rgb, key=lambda e: abs(e[1] - arr))
            offsets.append((a_best[0] - key) / 1e9)
        out["stamp_match"] = matched / len(tir)
        if delays:
            out["arrival_delay_s"] = statistics.median(delays)
        out["stamp_offset_s"] = statistics.median(offsets)
        return out


def explain_pairing(diag: Dict[str, Optional[float]], slop_s: float, max_delay_s: float) -> Optional[str]:
    """One line saying why few pairs form and which parameter fixes it; None when pairing is fine."""
    ratio = diag.get("pair_ratio")
    if ratio is None or ratio >= 0.5:
        return None
    match, delay, offset = diag.get("stamp_match"), diag.get("arrival_delay_s"), diag.get("stamp_offset_s")
    if match is not None and match >= 0.5 and delay is not None:
        late = "thermal" if delay > 0 else "rgb"
        return (f"few pairs ({ratio:.0%} of frames): {late} messages arrive {abs(delay):.2f} s after their partner "
                f"with a matching stamp but wait only sync.max_delay {max_delay_s:.2f} s (queue too short): raise "
                f"sync.max_delay to at least {abs(delay) + 0.1:.1f}")
    if offset is not None:
        return (f"few pairs ({ratio:.0%} of frames): stamps of frames arriving together differ by {offset:+.3f} s "
                f"(RGB - thermal), more than sync.slop {slop_s:.3f} s: the two drivers stamp with different "
                f"clocks; set sync.thermal_offset to {offset:.3f} (or fix the drivers' clocks)")
    return None
