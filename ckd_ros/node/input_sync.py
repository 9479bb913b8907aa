"""RGB + thermal subscriptions -> stamp guard -> ApproximateTimeSynchronizer -> FramePair.

The message_filters subscribers get the QoS profile explicitly (their default is reliable depth
10, which silently drops best-effort cameras). A guard between each subscriber and the
synchroniser counts arrivals, remembers arrival times (for the sync-wait latency) and resets the
synchroniser when stamps go backwards: after a bag loop its queues would otherwise stay full of
"future" messages and nothing would ever pair again.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable

import message_filters
from rclpy.duration import Duration

from ckd_ros.frames.pairing import match_approximate, trim_queue
from ckd_ros.node.frame_cache import FramePair

_ARRIVALS_KEPT = 256


def stamp_ns(msg) -> int:
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


class StampGuard(message_filters.SimpleFilter):
    def __init__(self, upstream, stream: str, on_message: Callable[[str, object], bool]) -> None:
        super().__init__()
        self.stream = stream
        self._on_message = on_message
        upstream.registerCallback(self.add)

    def add(self, msg) -> None:
        if self._on_message(self.stream, msg):
            self.signalMessage(msg)


class StampSynchronizer(message_filters.ApproximateTimeSynchronizer):
    """message_filters' ApproximateTimeSynchronizer with its pairing rule taken from
    `ckd_ros.frames.pairing.match_approximate` (the same rule `ckd track --bag` applies offline)."""

    def add(self, msg, my_queue, my_queue_index=None):
        stamp = stamp_ns(msg)
        with self.lock:
            my_queue[stamp] = msg
            trim_queue(my_queue, self.queue_size)
            stamps = match_approximate(self.queues, my_queue_index, stamp, self.slop.nanoseconds)
            if stamps is not None:
                msgs = [q.pop(s) for q, s in zip(self.queues, stamps)]
                self.signalMessage(*msgs)


class PairInput:
    """Owns the two subscriptions and the synchroniser; calls `on_pair(FramePair)` on the executor thread."""

    def __init__(self, node, msg_type, rgb_topic: str, thermal_topic: str, qos, queue_size: int, slop: float,
                 on_pair: Callable[[FramePair], None], on_arrival: Callable[[str, int], None],
                 on_backwards: Callable[[str, int, int], None], callback_group=None) -> None:
        self._node = node
        self._on_pair = on_pair
        self._on_arrival = on_arrival
        self._on_backwards = on_backwards
        self._lock = threading.Lock()
        self._arrivals: collections.OrderedDict = collections.OrderedDict()
        self._last: dict = {"rgb": None, "thermal": None}
        self._seq = 0
        self.rgb_sub = message_filters.Subscriber(node, msg_type, rgb_topic, qos_profile=qos,
                                                  callback_group=callback_group)
        self.thermal_sub = message_filters.Subscriber(node, msg_type, thermal_topic, qos_profile=qos,
                                                      callback_group=callback_group)
        guards = [StampGuard(self.rgb_sub, "rgb", self._guard), StampGuard(self.thermal_sub, "thermal", self._guard)]
        self.sync = StampSynchronizer(guards, queue_size, slop)
        self.sync.registerCallback(self._pair)

    def _guard(self, stream: str, msg) -> bool:
        ns = stamp_ns(msg)
        now = time.monotonic()
        with self._lock:
            last = self._last[stream]
            backwards = last is not None and ns < last
        if backwards:
            self.reset()
            self._on_backwards(stream, last, ns)
        with self._lock:
            self._last[stream] = ns
            self._arrivals[(stream, ns)] = now
            while len(self._arrivals) > _ARRIVALS_KEPT:
                self._arrivals.popitem(last=False)
        self._on_arrival(stream, ns)
        return True

    def _pair(self, rgb, thermal) -> None:
        now = time.monotonic()
        rgb_ns, tir_ns = stamp_ns(rgb), stamp_ns(thermal)
        with self._lock:
            first = min(self._arrivals.pop(("rgb", rgb_ns), now), self._arrivals.pop(("thermal", tir_ns), now))
            self._seq += 1
            seq = self._seq
        self._on_pair(FramePair(rgb, thermal, rgb_ns, tir_ns, now, now - first, seq))

    def set_slop(self, slop: float) -> None:
        with self.sync.lock:
            self.sync.slop = Duration(seconds=slop)

    def reset(self) -> None:
        """Empty the synchroniser's queues and forget the stamp order (both streams)."""
        with self.sync.lock:
            for queue in self.sync.queues:
                queue.clear()
        with self._lock:
            self._last = {"rgb": None, "thermal": None}
            self._arrivals.clear()

    def destroy(self) -> None:
        for sub in (self.rgb_sub, self.thermal_sub):
            self._node.destroy_subscription(sub.sub)

    @property
    def topics(self) -> tuple:
        return self.rgb_sub.sub.topic_name, self.thermal_sub.sub.topic_name


def input_topics(transport: str) -> tuple:
    """Relative topic names for a transport: raw images, or image_transport's `<base>/compressed`."""
    if transport == "compressed":
        return "rgb/image/compressed", "thermal/image/compressed"
    return "rgb/image", "thermal/image"

