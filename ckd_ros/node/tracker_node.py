"""`ckd_tracker`: the managed (lifecycle) ROS 2 node around the CKD tracker.

Contract: ../shared/design/ros-interface.md and docs/ros.md. on_configure loads the backend,
on_activate subscribes (synchronised RGB + thermal), on_deactivate unsubscribes, on_cleanup frees
the model. With `autostart` (default) the node configures and activates itself once the executor
spins. The pieces live in sibling modules: input_sync (subscriptions + time-sized synchroniser),
worker (newest pair only, inference and every tracker change off the executor), params (the one
parameter table), diagnostics, overlay, target, detections, frame_cache.

Every identity the node exposes derives from its fully qualified name (services and topics are
private `~/...`, the diagnostic status is `<fqn>: tracker` with hardware_id `<fqn>`, the worker
thread and log lines carry it), so several trackers run side by side in namespaces or one process.
Per-frame results leave through `_publish_outcome`; `result_hooks` (callables taking the Outcome,
run on the worker thread after the detections are published) is where further outputs attach.
"""
from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import JumpThreshold
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from sensor_msgs.srv import SetCameraInfo
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray

from ckd_ros.errors import CKDError, ParameterError
from ckd_ros.frames.ros_image import array_to_image_msg, make_converter
from ckd_ros.node import diagnostics as diag
from ckd_ros.node import params
from ckd_ros.node.detections import build_detections
from ckd_ros.node.frame_cache import FrameCache, FramePair
from ckd_ros.node.geometry import GeometryHelper
from ckd_ros.node.input_sync import PairInput, TimeSync, explain_pairing, fmt_stamp, input_topics, message_types
from ckd_ros.node.overlay import rgb_overlay, thermal_overlay
from ckd_ros.node.qos import input_qos
from ckd_ros.node.target import parse_request
from ckd_ros.node.worker import ClearTarget, Outcome, SetTarget, Settings, TrackingWorker, UpdateTracker
from ckd_ros.tracking import Tracker, TrackState

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
MB = 1024 * 1024


class CkdTrackerNode(LifecycleNode):
    """The tracker node. `backend_factory(values) -> Backend` replaces `open_backend` (tests, embedding)."""

    def __init__(self, node_name: str = "ckd_tracker", *,
                 backend_factory: Optional[Callable[[Dict[str, Any]], Any]] = None, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._backend_factory = backend_factory
        self._param_errors: Dict[str, str] = {}
        self._values: Dict[str, Any] = self._declare_parameters()
        if hasattr(self, "add_pre_set_parameters_callback"):  # Iron+: store ints given for doubles as doubles
            self.add_pre_set_parameters_callback(self._coerce_parameters)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._error: Optional[str] = None
        self._target_set_at: Optional[float] = None
        self.stats = diag.NodeStats()
        self.reporter = diag.BadInputReporter(self.get_logger().warning)
        self.converter, why = make_converter()
        self.get_logger().info(f"image conversion: {self.converter.name}" + (f" ({why})" if why else ""))
        v = self._values
        self.cache = FrameCache(v["tracking.init_cache_s"], max_bytes=int(v["tracking.init_cache_mb"] * MB),
                                pin_s=v["tracking.pin_s"])
        self.sync = TimeSync(v["sync.slop"], v["sync.max_delay"], self._on_pair,
                             thermal_offset_s=v["sync.thermal_offset"], reorder_window_s=v["sync.reorder_window"],
                             on_jump=self._on_stamp_jump, on_stamp_issue=self.reporter.report,
                             make_pair=FramePair)
        self.result_hooks: List[Callable[[Outcome], None]] = []
        # camera_info + TF registration, target ray (node/geometry.py)
        self.geometry = GeometryHelper(self, self._values, lambda: self._apply({"registration.homography"}))
        self.result_hooks.append(self.geometry.publish)

        self._backend = None
        self._tracker: Optional[Tracker] = None
        self._settings: Optional[Settings] = None
        self._worker: Optional[TrackingWorker] = None
        self._input: Optional[PairInput] = None
        self._det_pub = self._img_pub = self._tir_pub = None
        self._last_overlay = 0.0

        self._input_group = MutuallyExclusiveCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._diag_group = MutuallyExclusiveCallbackGroup()
        self.create_service(SetCameraInfo, "~/set_target", self._srv_set_target, callback_group=self._service_group)
        self.create_service(SetCameraInfo, "~/pin_frame", self._srv_pin_frame, callback_group=self._service_group)
        self.create_service(Trigger, "~/clear_target", self._srv_clear_target, callback_group=self._service_group)
        self.diagnostics = diag.make_updater(self, "tracker", self._fill_diagnostics, self._diag_group)
        # a /clock jump back (bag loop with --clock) or a switch of time source resets the input
        self._jump_handler = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(seconds=-1.0), on_clock_change=True),
            post_callback=self._on_clock_jump)
        self._autostart_timer = None
        for message in self._param_errors.values():
            self.get_logger().error(message)
        if self._values["autostart"]:
            # from the executor; on the MultiThreadedExecutor services answer while a TensorRT engine
            # builds in on_configure, on the EventsExecutor they answer after it (make_executor)
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # ---- parameters -------------------------------------------------------------------------------
    def _declare_parameters(self) -> Dict[str, Any]:
        """Declare the table (dynamic typing: no type error can kill the node) and read the values.

        Integers given for doubles become doubles (also in the stored parameter); any other type
        mismatch is one error line, the default is used and configure refuses until it is fixed.
        """
        values = params.defaults()
        for spec in params.SPECS:
            raw = self.declare_parameter(spec.name, spec.default, params.descriptor(spec)).value
            try:
                value = params.coerce(spec.name, raw)
            except ParameterError as exc:
                self._param_errors[spec.name] = (f"parameter {exc}; using the default until it is set "
                                                 "(params file, -p or ros2 param set)")
                continue
            values[spec.name] = value
            stored = Parameter(spec.name, value=value)
            if self.get_parameter(spec.name).type_ != stored.type_ and spec.when != params.STARTUP:
                self.set_parameters([stored])  # store 0 as 0.0 and [7000, 9000] as doubles
        return values

    def _coerce_parameters(self, parameters):
        out = []
        for p in parameters:
            spec = params.SPEC_BY_NAME.get(p.name)
            if spec is not None and isinstance(spec.default, (float, list)):
                try:
                    p = Parameter(p.name, value=params.coerce(p.name, p.value))
                except ParameterError:
                    pass  # refused with its reason by _on_set_parameters
            out.append(p)
        return out

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        raw = {p.name: p.value for p in parameters if p.name in params.SPEC_BY_NAME}
        if not raw:
            return SetParametersResult(successful=True)  # use_sim_time, diagnostic_updater.*, qos overrides
        reason = params.validate(raw, self._values, self.lifecycle_state)
        if reason:
            self.get_logger().warning(f"parameter change rejected: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        changes = {name: params.coerce(name, value) for name, value in raw.items()}
        for name in changes:
            self._param_errors.pop(name, None)
        self._values.update(changes)
        self._apply(set(changes))
        return SetParametersResult(successful=True)

    def _apply(self, names) -> None:
        """Rebuild what the changed parameters feed (the `rebuilds` column of the table)."""
        values = self._values
        self.geometry.on_parameters(names)
        if self._settings is not None and params.names_rebuilding(names, params.SETTINGS):
            self._settings = self._make_settings(values)  # one atomic swap the worker picks up per pair
            self._update_tracker(registration=self._settings.registration)
        if self._tracker is not None and params.names_rebuilding(names, params.TRACKER):
            self._update_tracker(params=params.make_tracker_params(values))
        if params.names_rebuilding(names, params.SYNC):
            self.sync.configure(values["sync.slop"], values["sync.max_delay"], values["sync.thermal_offset"],
                                values["sync.reorder_window"])
        if params.names_rebuilding(names, params.CACHE):
            self.cache.set_limits(values["tracking.init_cache_s"], int(values["tracking.init_cache_mb"] * MB),
                                  values["tracking.pin_s"])

    def _update_tracker(self, **changes) -> None:
        """Tracker changes run on the worker thread; without a worker nothing else touches the tracker."""
        if self._worker is not None:
            self._worker.command(UpdateTracker(**changes))
        elif self._tracker is not None:
            for name, value in changes.items():
                setattr(self._tracker, name, value)

    def _make_settings(self, values: Dict[str, Any]) -> Settings:
        registration = self.geometry.registration() or params.make_registration(values)  # camera_info mode
        return Settings(normalizer=params.make_normalizer(values), registration=registration,
                        label=values["tracking.label"], slop_s=float(values["sync.slop"]),
                        transports=params.stream_transports(values))

    # ---- lifecycle ------------------------------------------------------------------------------
    @property
    def lifecycle_state(self) -> str:
        """rclpy's lifecycle state label: unconfigured, inactive, active, finalized, or a transition."""
        return self._state_machine.current_state[1]

    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == SUCCESS:
            self.trigger_activate()

    def _open_backend(self, values: Dict[str, Any]):
        if self._backend_factory is not None:
            return self._backend_factory(dict(values))
        from ckd_ros.runtime import open_backend  # noqa: PLC0415 - torch/TensorRT load only when configuring

        checkpoint, onnx = values["model.checkpoint"] or None, values["model.onnx"] or None
        # which config wins (the file's own record over model.preset) is decided by open_backend's
        # resolver (ckd_ros.model.config_source), which logs a preset it ignores
        return open_backend(
            values["backend"], checkpoint=checkpoint, onnx=onnx,
            preset=values["model.preset"], precision=values["precision"], device=values["device"] or None,
            cache_dir=values["engine.cache_dir"] or None, workspace_mb=int(values["engine.workspace_mb"]),
            log=self.get_logger().info)

    def on_configure(self, state) -> TransitionCallbackReturn:
        values = dict(self._values)
        backend = None
        try:
            if self._param_errors:
                raise ParameterError("; ".join(self._param_errors.values()))
            reason = params.validate(values, {}, check_when=False)
            if reason:
                raise ParameterError(reason)
            settings = self._make_settings(values)
            t0 = time.monotonic()
            backend = self._open_backend(values)
            tracker = Tracker(backend, params.make_tracker_params(values), settings.registration)
        except Exception as exc:  # CKDError, missing files, no GPU...: stay unconfigured, one line
            if backend is not None:
                backend.close()
            self._error = f"configure failed: {exc}"
            self.get_logger().error(self._error)
            return FAILURE
        describe = getattr(backend, "describe", lambda: getattr(backend, "name", "?"))()
        self.get_logger().info(f"backend ready in {time.monotonic() - t0:.1f} s: {describe}")
        self._backend, self._tracker, self._settings, self._error = backend, tracker, settings, None
        reliable = QoSProfile(depth=10)
        self._det_pub = self.create_lifecycle_publisher(Detection2DArray, "~/detections", reliable)
        # reliable depth 1: rviz (reliable by default) and best-effort viewers both connect
        self._img_pub = self.create_lifecycle_publisher(Image, "~/debug/image", QoSProfile(depth=1))
        self._tir_pub = self.create_lifecycle_publisher(Image, "~/debug/thermal_image", QoSProfile(depth=1))
        return super().on_configure(state)

    def on_activate(self, state) -> TransitionCallbackReturn:
        values = self._values
        ret = super().on_activate(state)  # enables the lifecycle publishers
        if ret != SUCCESS:
            return ret
        transports = params.stream_transports(values)
        try:
            self.cache.clear()
            self.sync.reset()
            self._settings = self._make_settings(values)
            self._worker = TrackingWorker(
                self._tracker, converter=self.converter, cache=self.cache, stats=self.stats,
                reporter=self.reporter, settings=lambda: self._settings, on_outcome=self._publish_outcome,
                log_warn=self.get_logger().warning, name=self.get_fully_qualified_name())
            self._worker.start()
            self._input = PairInput(
                self, msg_types=message_types(transports), topics=input_topics(transports),
                qos=input_qos(values["qos.reliability"], values["qos.depth"]), sync=self.sync,
                on_arrival=self.stats.arrival, on_qos_event=self._on_qos_event, callback_group=self._input_group)
        except Exception as exc:
            self._error = f"activate failed: {exc}"
            self.get_logger().error(self._error)
            self._stop_input()
            super().on_deactivate(state)
            return FAILURE
        rgb, tir = self._input.topics
        self.get_logger().info(
            f"active: {rgb} + {tir} ({values['qos.reliability']}, depth {values['qos.depth']}, slop "
            f"{values['sync.slop']} s, max delay {values['sync.max_delay']} s); call "
            f"{self.get_fully_qualified_name()}/set_target to start tracking")
        return SUCCESS

    def _stop_input(self) -> None:
        if self._input is not None:
            self._input.destroy()
            self._input = None
        if self._worker is not None:
            if not self._worker.stop():
                self.get_logger().warning("inference worker did not stop within 30 s")
            self._worker = None
        if self._tracker is not None:
            self._tracker.reset()  # the worker thread has ended
        self._target_set_at = None
        self.cache.clear()
        self.sync.reset()

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._stop_input()
        return super().on_deactivate(state)

    def _release_model(self) -> None:
        for pub in (self._det_pub, self._img_pub, self._tir_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._det_pub = self._img_pub = self._tir_pub = None
        self._tracker = None
        if self._backend is not None:
            self._backend.close()  # frees GPU memory
            self._backend = None

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._release_model()
        return super().on_cleanup(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.teardown()
        return super().on_shutdown(state)

    def on_error(self, state) -> TransitionCallbackReturn:
        self.get_logger().error("lifecycle error: releasing everything (state -> unconfigured)")
        self.teardown()
        return SUCCESS

    def teardown(self) -> None:
        """Stop the worker, drop subscriptions, free the model (shutdown, Ctrl-C)."""
        self._stop_input()
        self._release_model()

    # ---- input (executor thread: only hand-over) ----------------------------------------------------
    def _on_pair(self, pair: FramePair) -> None:
        self.stats.paired()
        self.cache.add(pair)
        worker = self._worker
        if worker is not None:
            worker.submit(pair)

    def _reset_input(self) -> None:
        self.stats.count("stamp_resets")
        self.cache.clear()
        if self._worker is not None:
            self._worker.reset_stream()

    def _on_stamp_jump(self, stream: str, last_ns: int, new_ns: int) -> None:
        self._reset_input()
        self.reporter.report(
            "time_jump",
            f"{stream} stamps jumped back {(last_ns - new_ns) / 1e9:.3f} s ({fmt_stamp(last_ns)} -> "
            f"{fmt_stamp(new_ns)}; "
            f"more than sync.reorder_window {self._values['sync.reorder_window']} s: bag loop or clock reset?): "
            "synchroniser and frame cache reset")

    def _on_clock_jump(self, jump) -> None:
        if self.stats.snapshot()["counters"].get("pairs_received", 0) == 0:
            return  # use_sim_time attaching to /clock at start-up: nothing to reset
        self.sync.reset()
        self._reset_input()
        delta = jump.delta.nanoseconds / 1e9 if jump.delta is not None else 0.0
        self.reporter.report("clock_jump", f"the node's clock jumped {delta:+.3f} s (/clock, use_sim_time "
                             "switch): synchroniser and frame cache reset")

    def _on_qos_event(self, stream: str, kind: str, text: str) -> None:
        self.stats.count(f"qos.{kind}_{stream}")
        self.reporter.report(f"{kind}_{stream}", text)

    # ---- output (worker thread) ---------------------------------------------------------------------
    def _publish_outcome(self, outcome: Outcome) -> None:
        """The one place per-frame results are published: detections, overlays, then `result_hooks`."""
        if not rclpy.ok(context=self.context):
            return  # Ctrl-C shut the context down while this pair was in flight: nothing to publish to
        t0 = time.perf_counter()
        pair = outcome.decoded.pair
        settings = self._settings
        if outcome.state is not TrackState.IDLE and self._det_pub is not None:
            box = outcome.box if outcome.state is TrackState.TRACKING else None  # LOST: empty array
            self._det_pub.publish(build_detections(pair.rgb.header, box, outcome.score or 0.0, settings.label,
                                                   outcome.track_id))
            self.stats.detection()
        self._publish_overlays(outcome, settings)
        for hook in self.result_hooks:
            hook(outcome)
        timings = outcome.timings  # completed in place: callers (benchmarks) read them afterwards
        timings["publish"] = (time.perf_counter() - t0) * 1e3
        first_arrival = pair.paired_at - pair.sync_wait_s
        timings["total"] = (time.monotonic() - first_arrival) * 1e3
        now_ns = self.get_clock().now().nanoseconds
        timings["stamp_to_publish"] = (now_ns - pair.rgb_stamp_ns) / 1e6
        if outcome.live:
            self.stats.processed(timings)
        else:
            self.stats.count("catchup_published")

    def _publish_overlays(self, outcome: Outcome, settings: Settings) -> None:
        values = self._values
        if not values["debug.overlay"] or self._img_pub is None:
            return
        want_rgb = self._img_pub.get_subscription_count() > 0
        want_tir = self._tir_pub.get_subscription_count() > 0
        if not (want_rgb or want_tir):
            return  # lazy: no drawing, no copy, when nobody looks
        rate = values["debug.max_rate_hz"]
        now = time.monotonic()
        if rate > 0 and now - self._last_overlay < 1.0 / rate:
            return
        self._last_overlay = now
        self.stats.count("overlays_published")
        decoded, pair, state = outcome.decoded, outcome.decoded.pair, outcome.state.value
        if want_rgb:
            img = rgb_overlay(decoded.rgb, outcome.box, outcome.score, state, self.stats.fps(), settings.label)
            self._img_pub.publish(array_to_image_msg(img, "bgr8", pair.rgb.header))
        if want_tir:
            box_t = None if outcome.box is None else settings.registration.box_rgb_to_thermal(outcome.box)
            img = thermal_overlay(decoded.tir8, box_t, state)
            self._tir_pub.publish(array_to_image_msg(img, "bgr8", pair.thermal.header))

    # ---- services (bounded: they answer within tracking.service_timeout_s whatever the backend does) --
    def _wait(self, future: concurrent.futures.Future, what: str):
        timeout = float(self._values["tracking.service_timeout_s"])
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:  # not the builtin TimeoutError before 3.11
            future.cancel()  # a command still queued never runs late
            worker = self._worker
            busy = ""
            if worker is not None and worker.busy_since is not None:
                busy = f" (busy with a {worker.busy_with} for {time.monotonic() - worker.busy_since:.1f} s)"
            return False, (f"{what}: the tracker did not answer within {timeout:.1f} s{busy}; the request was "
                           "dropped; check the backend (diagnostics) and retry")

    def _inactive_reason(self) -> Optional[str]:
        state = self.lifecycle_state
        if state != "active" or self._worker is None:
            return f"node not active (state: {state}); activate it first"
        return None

    def _srv_set_target(self, request, response):
        why = self._inactive_reason()
        if why:
            ok, msg = False, why
        else:
            try:
                req = parse_request(request.camera_info)
            except CKDError as exc:
                ok, msg = False, str(exc)
            else:
                ok, msg = self._wait(self._worker.command(SetTarget(req)), "set_target")
        response.success, response.status_message = ok, msg
        if ok:
            self._target_set_at = time.monotonic()
            self.get_logger().info(f"set_target: {msg}")
        else:
            self.reporter.report("set_target", f"set_target rejected: {msg}")
        return response

    def _srv_pin_frame(self, request, response):
        """Keep the frame `camera_info.header.stamp` (RGB or thermal stamp; 0: newest) selectable for
        tracking.pin_s seconds, so a set_target drawn on that frozen frame succeeds however long it takes."""
        stamp = request.camera_info.header.stamp
        stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
        pair, how = self.cache.pin(stamp_ns, int(float(self._values["sync.slop"]) * 1e9))
        if pair is None:
            span = self.cache.span()
            cached = "no frames yet" if span is None else f"cached {fmt_stamp(span[0])} .. {fmt_stamp(span[1])}"
            response.success = False
            response.status_message = f"stamp {fmt_stamp(stamp_ns)} not in the frame cache ({cached})"
        else:
            response.success = True
            response.status_message = (f"pinned the {how} frame rgb {fmt_stamp(pair.rgb_stamp_ns)} / thermal "
                                       f"{fmt_stamp(pair.thermal_stamp_ns)} for {self._values['tracking.pin_s']:g} s")
        return response

    def _srv_clear_target(self, request, response):
        why = self._inactive_reason()
        if why:
            response.success, response.message = False, why.replace("activate it first", "there is no target to clear")
            return response
        response.success, response.message = self._wait(self._worker.command(ClearTarget()), "clear_target")
        if response.success:
            self._target_set_at = None
        self.get_logger().info(f"clear_target: {response.message}")
        return response

    # ---- diagnostics ------------------------------------------------------------------------------
    def _fill_diagnostics(self, stat):
        snap = self.stats.snapshot()
        state = self.lifecycle_state
        target = self._tracker.state.value if self._tracker is not None else "idle"
        values = self._values
        target_since = None if self._target_set_at is None else time.monotonic() - self._target_set_at
        pairing = explain_pairing(self.sync.diagnose(), values["sync.slop"], values["sync.max_delay"]) \
            if state == "active" else None
        level, message = diag.assess(snap, self.reporter.recent(), state, target, self._error,
                                     float(values["sync.slop"]), pairing, target_since)
        backend = self._backend
        extra = {
            "lifecycle": state,
            "state": target,
            "backend": "none" if backend is None else getattr(backend, "describe", lambda: backend.name)(),
            "image_conversion": self.converter.name,
            "frame_cache_pairs": str(len(self.cache)),
            "frame_cache_mb": f"{self.cache.nbytes / MB:.1f}",
            "pinned_frames": str(len(self.cache.pinned())),
        }
        q_rgb, q_tir = self.sync.queue_lengths()
        extra["sync_queue_rgb"], extra["sync_queue_thermal"] = str(q_rgb), str(q_tir)
        for reason, n in sorted(self.sync.dropped.items()):
            extra[f"sync.dropped.{reason}"] = str(n)
        for event, n in sorted(self.sync.stamp_events.items()):
            extra[f"stamps.{event}"] = str(n)
        worker = self._worker
        if worker is not None and worker.busy_since is not None:
            extra["worker_busy_s"] = f"{time.monotonic() - worker.busy_since:.2f}"
        geo_values, geo_warning = self.geometry.diagnostics(self._settings.registration if self._settings else None)
        extra.update(geo_values)
        if geo_warning:
            level, message = max(level, diag.WARN), (geo_warning if level == diag.OK else f"{message}; {geo_warning}")
        stat.summary(diag.level_bytes(level), message)
        for key, value in diag.key_values(snap, extra, self.reporter.totals()):
            stat.add(key, value)
        return stat


def events_executor_missing() -> Optional[str]:
    """None when this rclpy ships `rclpy.experimental.EventsExecutor`, else why not (one line)."""
    try:
        from rclpy.experimental import EventsExecutor  # noqa: F401, PLC0415
    except ImportError:
        return (f"rclpy of ROS {os.environ.get('ROS_DISTRO') or '?'} has no rclpy.experimental.EventsExecutor "
                "(recent Jazzy releases and later ship it; Humble does not)")
    return None


def make_executor(kind: str = "auto", context=None):
    """The executor `main()` spins the node with (parameter `executor`): returns (executor, name).

    `events`: rclpy's EventsExecutor (`rclpy.experimental`): a C++ event queue on one thread. The
    node's callbacks only hand over (the synchroniser, the frame cache, the latest-wins slot) and the
    worker thread tracks, so one thread serves them at half the CPU and latency of the
    MultiThreadedExecutor (figures: docs/ros.md, "Executor"). The price: a callback that takes long
    holds the others. `set_target` waits for the worker (template + catch-up, at most
    `tracking.service_timeout_s`), and `configure` loads the model (a first TensorRT engine build
    takes minutes): meanwhile images wait in the subscription queue (`qos.depth`, newest kept), and
    `get_state`, parameter services and /diagnostics answer afterwards.
    `multi_threaded`: rclpy's MultiThreadedExecutor, 4 threads: services and diagnostics answer during
    such waits; every rclpy has it.
    `auto`: events where rclpy has it, else multi_threaded.
    `context`: the rclpy context (None: the default one); the node is not added here.
    Raises ParameterError for an unknown kind, or for `events` on an rclpy without it.
    """
    choices = params.SPEC_BY_NAME["executor"].choices
    if kind not in choices:
        raise ParameterError(f"executor {kind!r} is unknown; choose one of {', '.join(choices)}")
    if kind in ("auto", "events"):
        missing = events_executor_missing()
        if missing is None:
            from rclpy.experimental import EventsExecutor  # noqa: PLC0415

            return EventsExecutor(context=context), "events"
        if kind == "events":
            raise ParameterError(f"executor 'events': {missing}; use executor auto or multi_threaded")
    return MultiThreadedExecutor(num_threads=4, context=context), "multi_threaded"


def spin_until_shutdown(executor, context=None, grace_s: float = 2.0) -> None:
    """Spin `executor` on a thread of its own until Ctrl-C or shutdown; the calling (main) thread waits.

    Ctrl-C raises KeyboardInterrupt in the main thread, so it lands in this wait and never inside a
    callback: rclpy's EventsExecutor runs callbacks on the spinning thread, and an interrupted one is
    logged as FATAL there, or surfaces as a RuntimeError ("Unable to convert call argument '0' ...")
    when it hits a message hand-over. An exception out of `spin()` propagates, unless the context goes
    down within `grace_s` seconds: rclpy's signal handler shuts it down from its own thread, so such an
    error is the stop itself. Returns when the executor stops or on Ctrl-C (the caller then tears down).
    """
    failure = []

    def run() -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name="executor", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        return
    if failure:
        deadline = time.monotonic() + grace_s
        while rclpy.ok(context=context) and time.monotonic() < deadline:
            time.sleep(0.02)
        if rclpy.ok(context=context):
            raise failure[0]


def main(args=None) -> int:
    from ckd_ros.node import handle_help

    handle_help("ckd_tracker", "CKD RGB-thermal tracker lifecycle node. Parameters: config/ckd_tracker.yaml "
                "(--ros-args --params-file FILE); usually started with `ros2 launch ckd_ros ckd_tracker.launch.py`.",
                args)
    rclpy.init(args=args)
    node = executor = None
    try:
        node = CkdTrackerNode()
        # the checked value: a bad one was logged at start-up and the default stands in for it
        executor, name = make_executor(node._values["executor"])
        node.get_logger().info(f"executor: {name}")
        executor.add_node(node)
        spin_until_shutdown(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterError as exc:
        print(f"ckd_tracker: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.teardown()
            node.destroy_node()
        if executor is not None:
            executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
