"""RGB + thermal subscriptions -> the time-sized synchroniser (`ckd_ros.frames.pairing.TimeSync`) -> FramePair.

`PairInput` owns the two rclpy subscriptions (with QoS event callbacks, so an incompatible publisher
shows in /diagnostics) and feeds a TimeSync; the pairing rule itself is framework-free in
`frames/pairing.py`, so `ckd track --bag` pairs bag messages exactly as the node pairs live ones.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

from ckd_ros.frames.pairing import STREAMS, TimeSync, explain_pairing, fmt_stamp, stamp_ns  # noqa: F401 - node API


def _event_callbacks_cls():
    try:
        from rclpy.event_handler import SubscriptionEventCallbacks  # noqa: PLC0415 - Iron and newer
    except ImportError:  # Humble
        from rclpy.qos_event import SubscriptionEventCallbacks  # noqa: PLC0415
    return SubscriptionEventCallbacks


def qos_policy_name(kind) -> str:
    try:
        from rclpy.qos import qos_policy_name_from_kind  # noqa: PLC0415

        return qos_policy_name_from_kind(kind)
    except Exception:  # noqa: BLE001 - a name for a log line only
        return str(kind)


class PairInput:
    """Owns the two subscriptions and a TimeSync; calls `on_pair(FramePair)` on the executor thread.

    `on_qos_event(stream, kind, text)` reports incompatible publishers.
    """

    def __init__(self, node, *, msg_types: Tuple[type, type], topics: Tuple[str, str], qos, sync: TimeSync,
                 on_arrival: Callable[[str, int], None], on_qos_event: Callable[[str, str, str], None],
                 callback_group=None) -> None:
        self._node = node
        self.sync = sync
        self._on_arrival = on_arrival
        self._on_qos_event = on_qos_event
        self.subs = []
        for stream, msg_type, topic in zip(STREAMS, msg_types, topics):
            self.subs.append(self._subscribe(stream, msg_type, topic, qos, callback_group))

    def _subscribe(self, stream: str, msg_type, topic: str, qos, group):
        callbacks_cls = _event_callbacks_cls()

        def incompatible(event, stream=stream):
            self._on_qos_event(stream, "qos_incompatible",
                               f"{stream}: a publisher on {self._node.resolve_topic_name(topic)} offers a QoS "
                               f"incompatible with this subscription (policy {qos_policy_name(event.last_policy_kind)}"
                               f"; {event.total_count} so far): no messages arrive from it; check qos.reliability "
                               "(best_effort accepts every publisher)")

        def callback(msg, stream=stream):
            ns = stamp_ns(msg)
            self._on_arrival(stream, ns)
            self.sync.add(stream, msg, ns)

        # incompatible QoS only: a message_lost handler costs the executor a wake-up per lost sample
        # (measured: the demo's 20 Hz 640x512 stream ran at half the rate with it)
        events = callbacks_cls(incompatible_qos=incompatible)
        return self._node.create_subscription(msg_type, topic, callback, qos, callback_group=group,
                                              event_callbacks=events)

    def destroy(self) -> None:
        for sub in self.subs:
            self._node.destroy_subscription(sub)
        self.subs = []

    @property
    def topics(self) -> tuple:
        return tuple(sub.topic_name for sub in self.subs)


def input_topics(transports: Tuple[str, str]) -> Tuple[str, str]:
    """Relative topic names per stream transport: raw images, or image_transport's `<base>/compressed`."""
    bases = ("rgb/image", "thermal/image")
    return tuple(b + "/compressed" if t == "compressed" else b for b, t in zip(bases, transports))


def message_types(transports: Tuple[str, str]) -> List[type]:
    from sensor_msgs.msg import CompressedImage, Image  # noqa: PLC0415

    return [CompressedImage if t == "compressed" else Image for t in transports]
