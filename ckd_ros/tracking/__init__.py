"""The framework-free CKD tracker: crops, normalisation, decode, state machine, registration.

Imports numpy and OpenCV only (backends are reached through `ckd_ros.runtime.base.Backend`).
Frames arrive already decoded and thermal already converted to 8 bit by `ckd_ros.frames`.
"""
from ckd_ros.frames.thermal import ThermalNormalizer  # re-exported: frames/ owns it, users import it here
from ckd_ros.tracking.registration import Registration
from ckd_ros.tracking.tracker import Tracker, TrackerParams, TrackResult, TrackState

__all__ = ["Registration", "ThermalNormalizer", "Tracker", "TrackerParams", "TrackResult", "TrackState"]
