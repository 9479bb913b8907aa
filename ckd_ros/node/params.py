"""The node's parameters: ONE table (`SPECS`) with defaults, types, ranges, descriptions, when each
may change and what a change rebuilds. Adding a parameter is one row here (plus its line in
config/ckd_tracker.yaml and the README table, which a test keeps in step).

Parameters are declared with dynamic typing so that rclpy never kills the node on a type mismatch:
`coerce()` does the typing instead. Integers are accepted for floats and integer arrays for float
arrays (YAML `0` for `0.0`, `[7000, 9000]`); any other mismatch is one line naming the parameter,
the value and the expected type. `validate()` is plain Python (tested without ROS) and adds choices,
ranges, array lengths, lifecycle rules and the cross-checks the tracking library itself performs
(ThermalNormalizer, Registration, TrackerParams), so a rejected `ros2 param set` says exactly why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ckd_ros.errors import ParameterError
from ckd_ros.frames.thermal import DEFAULT_THERMAL, METHODS, ThermalNormalizer
from ckd_ros.runtime.options import KINDS, PRECISIONS, PRESETS
from ckd_ros.tracking import Registration, TrackerParams

# when a parameter may change
RUNTIME = "runtime"  # any time, applied to the next pair
INACTIVE = "inactive"  # not while active: takes effect on activate (subscriptions are rebuilt)
UNCONFIGURED = "unconfigured"  # read-only after configure: the model is loaded in on_configure
STARTUP = "startup"  # read-only (descriptor): only from the command line / params file

# what a runtime change rebuilds (the node dispatches on these; see CkdTrackerNode._apply)
SETTINGS = "settings"  # the worker's Settings object (normaliser, registration, label, slop)
TRACKER = "tracker"  # the tracker's TrackerParams (swapped on the worker thread)
SYNC = "sync"  # the synchroniser's slop / offset / delay window
CACHE = "cache"  # the set_target frame cache bounds

IDENTITY = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
TRANSPORTS = ("raw", "compressed")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default (its Python type is the parameter type), description, rules."""

    name: str
    default: Any
    description: str
    when: str = RUNTIME
    choices: Tuple[str, ...] = ()
    min: Optional[float] = None
    max: Optional[float] = None
    length: Optional[int] = None  # arrays: exact number of elements
    rebuilds: Tuple[str, ...] = ()  # what a runtime change rebuilds (SETTINGS, TRACKER, SYNC, CACHE)

    @property
    def type_name(self) -> str:
        d = self.default
        if isinstance(d, bool):
            return "bool"
        if isinstance(d, int):
            return "integer"
        if isinstance(d, float):
            return "double"
        if isinstance(d, list):
            return "double array"
        return "string"

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
    ParamSpec("executor", "auto", "executor of `ckd_tracker` (main): events = rclpy's EventsExecutor (half "
              "the node's CPU and latency; services wait while configure or set_target run), multi_threaded "
              "= MultiThreadedExecutor; auto = events where rclpy has it (recent Jazzy and later)", STARTUP,
              choices=("auto", "events", "multi_threaded")),
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
    ParamSpec("sync.slop", 0.03, "largest RGB/thermal stamp difference paired (s)", RUNTIME, min=0.0, max=1.0,
              rebuilds=(SETTINGS, SYNC)),
    ParamSpec("sync.max_delay", 0.5, "how long (s) a message waits for its partner from the other camera: "
              "at least the arrival delay between the two streams", RUNTIME, min=0.01, max=10.0,
              rebuilds=(SYNC,)),
    ParamSpec("sync.thermal_offset", 0.0, "seconds added to thermal stamps before pairing (drivers that stamp "
              "with a constant offset)", RUNTIME, min=-10.0, max=10.0, rebuilds=(SYNC,)),
    ParamSpec("sync.reorder_window", 0.5, "a stamp this much (s) older than the stream's newest is reordering "
              "and is kept; an older one is a time jump (bag loop, clock reset) that resets the input",
              RUNTIME, min=0.0, max=60.0, rebuilds=(SYNC,)),
    ParamSpec("qos.reliability", "best_effort", "input QoS reliability (best_effort accepts both kinds "
              "of publisher)", INACTIVE, choices=("best_effort", "reliable")),
    ParamSpec("qos.depth", 5, "input QoS history depth", INACTIVE, min=1, max=100),
    ParamSpec("transport", "raw", "default transport of both streams: raw <topic> or compressed "
              "<topic>/compressed (sensor_msgs/CompressedImage)", INACTIVE, choices=TRANSPORTS),
    ParamSpec("transport.rgb", "", "transport of the RGB stream; empty: `transport`", INACTIVE,
              choices=("",) + TRANSPORTS),
    ParamSpec("transport.thermal", "", "transport of the thermal stream; empty: `transport`", INACTIVE,
              choices=("",) + TRANSPORTS),
    # thermal
    ParamSpec("thermal.normalization", DEFAULT_THERMAL["method"], "thermal -> 8 bit: auto (the shared default of "
              "training, ckd track and ckd benchmark: 8-bit as is, else percentile), percentile (with the AGC "
              "floor), minmax, fixed range, or none (8-bit input as is)", RUNTIME, choices=METHODS,
              rebuilds=(SETTINGS,)),
    ParamSpec("thermal.percentiles", list(DEFAULT_THERMAL["percentiles"]), "low/high percentiles for "
              "'percentile'", RUNTIME, length=2, rebuilds=(SETTINGS,)),
    ParamSpec("thermal.range", [0.0, 0.0], "low/high input values for 'fixed', in the input's units "
              "(raw counts or degrees)", RUNTIME, length=2, rebuilds=(SETTINGS,)),
    ParamSpec("thermal.invert", False, "invert the 8-bit thermal image (black-hot cameras)", RUNTIME,
              rebuilds=(SETTINGS,)),
    ParamSpec("registration.homography", list(IDENTITY), "3x3 row-major homography thermal pixels -> RGB "
              "pixels; identity for pre-registered rigs", RUNTIME, length=9, rebuilds=(SETTINGS,)),
    ParamSpec("registration.mode", "homography", "homography: registration.homography; camera_info: computed "
              "from rgb/camera_info, thermal/camera_info and the TF between their optical frames", RUNTIME,
              choices=("homography", "camera_info"), rebuilds=(SETTINGS,)),
    ParamSpec("registration.depth_m", 0.0, "camera_info mode: distance (m) of the registered plane in front "
              "of the thermal camera; 0 = infinity", RUNTIME, min=0.0, max=1e6, rebuilds=(SETTINGS,)),
    # tracking
    ParamSpec("tracking.lost_threshold", 0.25, "score below which a frame counts as low; 0 = never LOST",
              RUNTIME, min=0.0, max=1.0, rebuilds=(TRACKER,)),
    ParamSpec("tracking.lost_frames", 5, "consecutive low frames before LOST", RUNTIME, min=1, max=1000,
              rebuilds=(TRACKER,)),
    ParamSpec("tracking.label", "target", "class_id of the published hypothesis", RUNTIME, rebuilds=(SETTINGS,)),
    ParamSpec("tracking.init_cache_s", 2.0, "how far back (s) ~/set_target may reference a frame", RUNTIME,
              min=0.0, max=10.0, rebuilds=(CACHE,)),
    ParamSpec("tracking.init_cache_mb", 256.0, "memory bound (MiB) of the set_target frame cache (the oldest "
              "pairs go first)", RUNTIME, min=1.0, max=65536.0, rebuilds=(CACHE,)),
    ParamSpec("tracking.pin_s", 60.0, "how long (s) a frame pinned by ~/pin_frame stays selectable",
              RUNTIME, min=1.0, max=3600.0, rebuilds=(CACHE,)),
    ParamSpec("tracking.service_timeout_s", 5.0, "longest wait (s) of ~/set_target and ~/clear_target for "
              "the tracker; then they answer failure", RUNTIME, min=0.5, max=120.0),
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
    """rcl_interfaces ParameterDescriptor with a description, constraints and the read-only flag.

    Typing is dynamic (rclpy accepts any type; `coerce` converts or refuses in one line), so the
    ranges are checked by `validate`, and listed in `additional_constraints`.
    """
    from rcl_interfaces.msg import ParameterDescriptor  # noqa: PLC0415 - keeps the table importable without ROS

    return ParameterDescriptor(name=spec.name, description=f"{spec.description} ({spec.type_name})",
                               additional_constraints=spec.constraints(), read_only=spec.when == STARTUP,
                               dynamic_typing=True)


def _describe(value: Any) -> str:
    kind = {bool: "a bool", int: "an integer", float: "a double", str: "a string"}.get(type(value))
    if kind is None:
        kind = "an array" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}"
    return f"{value!r} is {kind}"


def coerce(name: str, value: Any) -> Any:
    """`value` in the parameter's declared type: int -> float, int array -> float array.

    Raises ParameterError (one line: parameter, value, expected type) for any other mismatch and
    for unknown names. Values that rclpy hands over as array.array or tuples become lists.
    """
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        raise ParameterError(f"{name}: unknown parameter")
    d = spec.default
    bad = ParameterError(f"{name}: {_describe(value)}, expected {'a' if spec.type_name[0] != 'i' else 'an'} "
                         f"{spec.type_name} (e.g. {d!r})")
    if isinstance(d, bool):
        if isinstance(value, bool):
            return value
        raise bad
    if isinstance(d, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if isinstance(d, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if isinstance(d, list):
        if isinstance(value, str) or not hasattr(value, "__len__"):
            raise bad
        items = list(value)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            raise bad
        return [float(v) for v in items]
    if isinstance(value, str):
        return value
    raise bad


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


BUILDERS = {SETTINGS: (make_normalizer, make_registration), TRACKER: (make_tracker_params,)}


def stream_transports(values: Dict[str, Any]) -> Tuple[str, str]:
    """(rgb, thermal) transport: the per-stream parameter, else `transport`."""
    return (values["transport.rgb"] or values["transport"], values["transport.thermal"] or values["transport"])


def names_rebuilding(names: Iterable[str], what: str) -> bool:
    return any(what in SPEC_BY_NAME[n].rebuilds for n in names if n in SPEC_BY_NAME)


# ---- validation ------------------------------------------------------------------------------

def _check_value(spec: ParamSpec, value: Any) -> Optional[str]:
    if spec.choices and value not in spec.choices:
        listed = ", ".join(c or "''" for c in spec.choices)
        return f"{spec.name}: '{value}' is not one of {listed}"
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

    Values are coerced first (int for double is fine; other type mismatches are reasons).
    `check_when=False` checks values only (the start-up values, read in on_configure).
    """
    problems: List[str] = []
    coerced: Dict[str, Any] = {}
    for name, value in changes.items():
        spec = SPEC_BY_NAME.get(name)
        if spec is None:
            problems.append(f"{name}: unknown parameter")
            continue
        when = _when_rule(spec, lifecycle) if check_when else None
        if when:
            problems.append(when)
        try:
            coerced[name] = coerce(name, value)
        except ParameterError as exc:
            problems.append(str(exc))
            continue
        reason = _check_value(spec, coerced[name])
        if reason:
            problems.append(reason)
    if problems:
        return "; ".join(problems)
    merged = dict(current)
    merged.update(coerced)
    # the objects a change rebuilds are built once here, so the library's own checks speak
    for group, builders in BUILDERS.items():
        touched = sorted(n for n in coerced if group in SPEC_BY_NAME[n].rebuilds)
        if not touched:
            continue
        for build in builders:
            try:
                build(merged)
            except (ValueError, ParameterError) as exc:
                problems.append(f"{'/'.join(touched)}: {exc}")
    return "; ".join(problems) or None


def runtime_names() -> Iterable[str]:
    return [s.name for s in SPECS if s.when == RUNTIME]
