"""The framework-free CKD tracker: crops, normalisation, decode, state machine, thermal AGC, registration.

Imports numpy and OpenCV only (backends are reached through `ckd_ros.runtime.base.Backend`).
"""
from ckd_ros.tracking.registration import Registration
from ckd_ros.tracking.thermal import ThermalNormalizer
from ckd_ros.tracking.tracker import Tracker, TrackerParams, TrackResult, TrackState

__all__ = ["Registration", "ThermalNormalizer", "Tracker", "TrackerParams", "TrackResult", "TrackState"]
