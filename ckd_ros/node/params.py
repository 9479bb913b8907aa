"""The node's parameters: one table with defaults, ranges, descriptions and when each may change.

`validate()` is plain Python (tested without ROS); rclpy already enforces types and the ranges of
the descriptors, this adds choices, array lengths, lifecycle rules and the cross-checks that the
tracking library itself performs (ThermalNormalizer, Registration, TrackerParams), so a rejected
`ros2 param set` says exactly why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ckd_ros.frames.thermal import DEFAULT_THERMAL, METHODS, ThermalNormalizer
from ckd_ros.runtime.options import KINDS, PRECISIONS, PRESETS
from ckd_ros.tracking import Registration, TrackerParams

# when a parameter may change
RUNTIME = "runtime"  # any time, applied to the next pair
INACTIVE = "inactive"  # not while active: takes effect on activate (subscriptions are rebuilt)
UNCONFIGURED = "unconfigured"  # read-only after configure: the model is loaded in on_configure
STARTUP = "startup"  # read-only (descriptor): only from the command line / params file

IDENTITY = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    when: str = RUNTIME
    choices: Tuple[str, ...] = ()
    min: Optional[float] = None
    max: Optional[float] = None
    length: Optional[int] = None  # arrays: exact number of elements

    def constraints(self) -> str:
        parts = []
        if self.choices:
            parts.append("one of: " + ", ".join(self.choices))
        if self.min is not None:
            parts.append(f"range [{self.min}, {self.max}]")
        if self.length is not None:
            parts.append(f"{self.length} values")
        parts.append({RUNTIME: "changeable at runtime", INACTIVE: "changeable while not active",
                      UNCONFIGURED: "read-only after configure", STARTUP: "read-only"}[self.when])
        return "; ".join(parts)


SPECS: List[ParamSpec] = [
    ParamSpec("autostart", True, "configure and activate on start-up", STARTUP),
    # model / backend (loaded in on_configure)
    ParamSpec("model.checkpoint", "", "official .pth.tar or converted student file (one of model.checkpoint "
              "/ model.onnx is required)", UNCONFIGURED),
    ParamSpec("model.onnx", "", "exported ONNX file (onnxruntime / tensorrt backends); empty: exported "
              "from the checkpoint into engine.cache_dir", UNCONFIGURED),
    ParamSpec("model.preset", "vitb_mce", "network configuration of an official checkpoint (converted and "
              "ONNX files carry their own)", UNCONFIGURED, choices=PRESETS),
    ParamSpec("backend", "auto", "inference backend; auto = TensorRT on a GPU, else ONNX Runtime",
              UNCONFIGURED, choices=KINDS),
    ParamSpec("precision", "fp32", "network precision (fp16 for TensorRT on Jetson; int8 needs a QDQ ONNX "
              "file from `ckd quantize`)", UNCONFIGURED, choices=PRECISIONS),
    ParamSpec("device", "", "torch/onnxruntime device, e.g. cuda:0 or cpu; empty: automatic", UNCONFIGURED),
    ParamSpec("engine.cache_dir", "", "TensorRT engine cache; empty: the user cache dir (never the "
              "install dir)", UNCONFIGURED),
    ParamSpec("engine.workspace_mb", 2048, "TensorRT builder workspace (MiB)", UNCONFIGURED, min=64, max=65536),
    # input
    ParamSpec("sync.slop", 0.03, "largest RGB/thermal stamp difference paired (s)", RUNTIME, min=0.0, max=1.0),
    ParamSpec("sync.queue_size", 10, "messages per stream the synchroniser keeps", INACTIVE, min=1, max=100),
    ParamSpec("qos.reliability", "best_effort", "input QoS reliability (best_effort accepts both kinds "
              "of publisher)", INACTIVE, choices=("best_effort", "reliable")),
    ParamSpec("qos.depth", 5, "input QoS history depth", INACTIVE, min=1, max=100),
    ParamSpec("transport", "raw", "raw: <topic>; compressed: <topic>/compressed (sensor_msgs/CompressedImage)",
              INACTIVE, choices=("raw", "compressed")),
    # thermal
    ParamSpec("thermal.normalization", DEFAULT_THERMAL["method"], "thermal -> 8 bit: auto (the shared default of "
              "training, ckd track and ckd benchmark: 8-bit as is, else percentile), percentile (with the AGC "
              "floor), minmax, fixed range, or none (8-bit input as is)", RUNTIME, choices=METHODS),
    ParamSpec("thermal.percentiles", list(DEFAULT_THERMAL["percentiles"]), "low/high percentiles for "
              "'percentile'", RUNTIME, length=2),
    ParamSpec("thermal.range", [0.0, 0.0], "low/high input values for 'fixed', in the input's units "
              "(raw counts or degrees)", RUNTIME, length=2),
    ParamSpec("thermal.invert", False, "invert the 8-bit thermal image (black-hot cameras)", RUNTIME),
    ParamSpec("registration.homography", list(IDENTITY), "3x3 row-major homography thermal pixels -> RGB "
              "pixels; identity for pre-registered rigs", RUNTIME, length=9),
    ParamSpec("registration.mode", "homography", "homography: registration.homography; camera_info: computed "
              "from rgb/camera_info, thermal/camera_info and the TF between their optical frames", RUNTIME,
              choices=("homography", "camera_info")),
    ParamSpec("registration.depth_m", 0.0, "camera_info mode: distance (m) of the registered plane in front "
              "of the thermal camera; 0 = infinity", RUNTIME, min=0.0, max=1e6),
    # tracking
    ParamSpec("tracking.lost_threshold", 0.25, "score below which a frame counts as low; 0 = never LOST",
              RUNTIME, min=0.0, max=1.0),
    ParamSpec("tracking.lost_frames", 5, "consecutive low frames before LOST", RUNTIME, min=1, max=1000),
    ParamSpec("tracking.label", "target", "class_id of the published hypothesis", RUNTIME),
    ParamSpec("tracking.init_cache_s", 2.0, "how far back (s) ~/set_target may reference a frame", RUNTIME,
              min=0.0, max=10.0),
    # debug
    ParamSpec("debug.overlay", True, "publish ~/debug/image and ~/debug/thermal_image (only while "
              "subscribed)", RUNTIME),
    ParamSpec("debug.max_rate_hz", 15.0, "overlay rate limit; 0 = every processed pair", RUNTIME,
              min=0.0, max=240.0),
]
SPEC_BY_NAME: Dict[str, ParamSpec] = {s.name: s for s in SPECS}


def defaults() -> Dict[str, Any]:
    return {s.name: (list(s.default) if isinstance(s.default, list) else s.default) for s in SPECS}


def descriptor(spec: ParamSpec):
    """rcl_interfaces ParameterDescriptor with type, range, read-only flag and a description."""
    from rcl_interfaces.msg import (  # noqa: PLC0415 - keeps the table importable without ROS
        FloatingPointRange,
        IntegerRange,
        ParameterDescriptor,
        ParameterType,
    )

    d = spec.default
    if isinstance(d, bool):
        ptype = ParameterType.PARAMETER_BOOL
    elif isinstance(d, int):
        ptype = ParameterType.PARAMETER_INTEGER
    elif isinstance(d, float):
        ptype = ParameterType.PARAMETER_DOUBLE
    elif isinstance(d, list):
        ptype = ParameterType.PARAMETER_DOUBLE_ARRAY
    else:
        ptype = ParameterType.PARAMETER_STRING
    desc = ParameterDescriptor(name=spec.name, type=ptype, description=spec.description,
                               additional_constraints=spec.constraints(), read_only=spec.when == STARTUP)
    if spec.min is not None and ptype == ParameterType.PARAMETER_INTEGER:
        desc.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
    elif spec.min is not None and ptype == ParameterType.PARAMETER_DOUBLE:
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max),
                                                        step=0.0)]
    return desc


# ---- objects built from parameter values -----------------------------------------------------

def make_normalizer(values: Dict[str, Any]) -> ThermalNormalizer:
    method = values["thermal.normalization"]
    value_range = list(values["thermal.range"]) if method == "fixed" else None
    return ThermalNormalizer(method=method, percentiles=list(values["thermal.percentiles"]),
                             value_range=value_range, invert=bool(values["thermal.invert"]))


def make_registration(values: Dict[str, Any]) -> Registration:
    return Registration(list(values["registration.homography"]))


def make_tracker_params(values: Dict[str, Any]) -> TrackerParams:
    thr = float(values["tracking.lost_threshold"])
    params = TrackerParams(lost_threshold=thr if thr > 0 else None, lost_frames=int(values["tracking.lost_frames"]))
    params.validate()
    return params


# ---- validation ------------------------------------------------------------------------------

def _check_value(spec: ParamSpec, value: Any) -> Optional[str]:
    if spec.choices and value not in spec.choices:
        return f"{spec.name}: '{value}' is not one of {', '.join(spec.choices)}"
    if spec.length is not None:
        try:
            n = len(value)
        except TypeError:
            return f"{spec.name}: expected {spec.length} numbers, got {value!r}"
        if n != spec.length:
            return f"{spec.name}: expected {spec.length} numbers, got {n}"
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
            return f"{spec.name}: values must be finite numbers, got {list(value)}"
    if spec.min is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not (spec.min <= value <= spec.max) or (isinstance(value, float) and not math.isfinite(value)):
            return f"{spec.name}: {value} is outside [{spec.min}, {spec.max}]"
    if spec.name == "sync.slop" and value <= 0:
        return "sync.slop: must be > 0 s (exactly equal stamps: use a small value such as 0.001)"
    return None


def _when_rule(spec: ParamSpec, lifecycle: str) -> Optional[str]:
    if spec.when == STARTUP:
        return f"{spec.name} is read-only: set it on the command line or in the params file"
    if spec.when == UNCONFIGURED and lifecycle in ("inactive", "active"):
        return (f"{spec.name} is read-only after configure (the model is loaded then): deactivate, "
                "cleanup, set it, configure again")
    if spec.when == INACTIVE and lifecycle == "active":
        return f"{spec.name} takes effect on activate: deactivate the node, set it, activate again"
    return None


def validate(changes: Dict[str, Any], current: Dict[str, Any], lifecycle: str = "unconfigured",
             check_when: bool = True) -> Optional[str]:
    """None when `changes` (applied together on top of `current`) are acceptable, else the reason.

    `check_when=False` checks values only (the start-up values, read in on_configure).
    """
    problems: List[str] = []
    for name, value in changes.items():
        spec = SPEC_BY_NAME.get(name)
        if spec is None:
            problems.append(f"{name}: unknown parameter")
            continue
        when = _when_rule(spec, lifecycle) if check_when else None
        for reason in (when, _check_value(spec, value)):
            if reason:
                problems.append(reason)
    if problems:
        return "; ".join(problems)
    merged = dict(current)
    merged.update(changes)
    touched = set(changes)
    checks = (
        ({"thermal.normalization", "thermal.percentiles", "thermal.range", "thermal.invert"}, make_normalizer),
        ({"registration.homography"}, make_registration),
        ({"tracking.lost_threshold", "tracking.lost_frames"}, make_tracker_params),
    )
    for names, build in checks:
        if touched & names:
            try:
                build(merged)
            except ValueError as exc:
                problems.append(f"{'/'.join(sorted(touched & names))}: {exc}")
    return "; ".join(problems) or None


def runtime_names() -> Iterable[str]:
    return [s.name for s in SPECS if s.when == RUNTIME]
