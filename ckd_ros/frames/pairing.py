"""RGB/thermal pairing by header stamp: the node's rule, framework-free, for bags and live topics.

The node pairs with message_filters' `ApproximateTimeSynchronizer(queue_size, slop)` (node/input_sync.py,
which calls `match_approximate` below through its synchroniser subclass). Its rule, per arriving message:
store it in its stream's queue (keyed by stamp; beyond `queue_size` entries the oldest stamp is dropped),
then look in the other stream's queue for stamps within `slop` of it, nearest first (ties: the earlier
queued); the first whose difference is strictly below `slop` forms a pair, and both leave their queues.
`ApproximatePairer` runs the same rule over messages in arrival (bag log) order, and, like the node's
stamp guard, empties both queues when a stream's stamps go backwards (a bag loop).
"""
from __future__ import annotations

import itertools
from typing import Any, Dict, List, MutableMapping, Optional, Sequence, Tuple


def match_approximate(queues: Sequence[MutableMapping[int, Any]], index: Optional[int], stamp_ns: int,
                      slop_ns: int) -> Optional[List[int]]:
    """The stamps (one per queue, in queue order) that the message at `stamp_ns` just added to
    `queues[index]` pairs with, or None. `index` None: search every queue (message_filters' API).

    Exactly message_filters' ApproximateTimeSynchronizer.add (ROS 2 Humble/Jazzy): candidates with
    |s - stamp| <= slop, sorted by that difference (stable), combinations in order, the first whose
    spread is < slop and whose stamps are all still queued wins. The caller removes them.
    """
    search = list(queues) if index is None else [q for i, q in enumerate(queues) if i != index]
    candidates = []
    for queue in search:
        near = [(s, abs(s - stamp_ns)) for s in queue if abs(s - stamp_ns) <= slop_ns]
        if not near:
            return None
        near.sort(key=lambda x: x[1])
        candidates.append([s for s, _ in near])
    for combo in itertools.product(*candidates):
        stamps = list(combo)
        if index is not None:
            stamps.insert(index, stamp_ns)
        if max(stamps) - min(stamps) < slop_ns and all(s in q for q, s in zip(queues, stamps)):
            return stamps
    return None


def trim_queue(queue: MutableMapping[int, Any], queue_size: int) -> None:
    """Drop the oldest stamps beyond `queue_size` (message_filters' rule)."""
    while len(queue) > queue_size:
        del queue[min(queue)]


class ApproximatePairer:
    """Offline twin of the node's synchroniser for two streams (0 = RGB, 1 = thermal).

    `add(stream, stamp_ns, item)` returns (rgb_item, thermal_item, rgb_stamp_ns, thermal_stamp_ns) when
    the message completes a pair, else None. `slop_s` and `queue_size` are the node's `sync.slop` and
    `sync.queue_size`.
    """

    def __init__(self, slop_s: float = 0.03, queue_size: int = 10) -> None:
        if not slop_s > 0:
            raise ValueError(f"slop must be > 0 s, got {slop_s}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.slop_ns = int(slop_s * 1_000_000_000)  # as rclpy.Duration(seconds=...) truncates
        self.queue_size = int(queue_size)
        self.queues: Tuple[Dict[int, Any], Dict[int, Any]] = ({}, {})
        self._last: List[Optional[int]] = [None, None]
        self.resets = 0

    def add(self, stream: int, stamp_ns: int, item: Any):
        last = self._last[stream]
        if last is not None and stamp_ns < last:  # stamps went backwards: start over (node's StampGuard)
            for q in self.queues:
                q.clear()
            self._last = [None, None]
            self.resets += 1
        self._last[stream] = stamp_ns
        queue = self.queues[stream]
        queue[stamp_ns] = item
        trim_queue(queue, self.queue_size)
        stamps = match_approximate(self.queues, stream, stamp_ns, self.slop_ns)
        if stamps is None:
            return None
        items = [q.pop(s) for q, s in zip(self.queues, stamps)]
        return items[0], items[1], stamps[0], stamps[1]
