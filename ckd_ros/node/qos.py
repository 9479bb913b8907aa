"""Input QoS: the sensor-data profile (best effort, keep last N, volatile) unless `qos.reliability` says reliable.

A best-effort subscription accepts both best-effort and reliable publishers; a reliable one only
reliable publishers, so best effort is the default that works with every camera driver.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def input_qos(reliability: str = "best_effort", depth: int = 5) -> QoSProfile:
    if reliability not in RELIABILITY:
        raise ValueError(f"qos.reliability must be one of {sorted(RELIABILITY)}, got {reliability!r}")
    if depth < 1:
        raise ValueError(f"qos.depth must be >= 1, got {depth}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=RELIABILITY[reliability], durability=DurabilityPolicy.VOLATILE)
