"""`ckd_tracker`: the managed (lifecycle) ROS 2 node around the CKD tracker.

Contract: ../shared/design/ros-interface.md. on_configure loads the backend, on_activate
subscribes (synchronised RGB + thermal), on_deactivate unsubscribes, on_cleanup frees the model.
With `autostart` (default) the node configures and activates itself once the executor spins.
The pieces live in sibling modules: input_sync (subscriptions + synchroniser), worker (newest
pair only, inference off the executor), params, diagnostics, overlay, target, detections.
"""
from __future__ import annotations

import concurrent.futures
import os
import sys
import time
from typing import Any, Callable, Dict, Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, Image
from sensor_msgs.srv import SetCameraInfo
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray

from ckd_ros.frames.ros_image import array_to_image_msg, make_converter
from ckd_ros.node import diagnostics as diag
from ckd_ros.node import params as P
from ckd_ros.node.detections import build_detections
from ckd_ros.node.frame_cache import FrameCache, FramePair
from ckd_ros.node.geometry import GeometryHelper
from ckd_ros.node.input_sync import PairInput, input_topics
from ckd_ros.node.overlay import rgb_overlay, thermal_overlay
from ckd_ros.node.qos import input_qos
from ckd_ros.node.target import parse_request
from ckd_ros.node.worker import Outcome, Settings, TrackingWorker
from ckd_ros.tracking import Tracker

SERVICE_TIMEOUT_S = 60.0  # set_target waits for the worker: one inference plus up to 8 catch-up frames
SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


def _value(spec: P.ParamSpec, value: Any) -> Any:
    return list(value) if isinstance(spec.default, list) else value


class CkdTrackerNode(LifecycleNode):
    """The tracker node. `backend_factory(values) -> Backend` replaces `open_backend` (tests, embedding)."""

    def __init__(self, node_name: str = "ckd_tracker", *,
                 backend_factory: Optional[Callable[[Dict[str, Any]], Any]] = None, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._backend_factory = backend_factory
        for spec in P.SPECS:
            self.declare_parameter(spec.name, spec.default, P.descriptor(spec))
        self._values: Dict[str, Any] = {
            s.name: _value(s, self.get_parameter(s.name).value) for s in P.SPECS}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._lifecycle = "unconfigured"
        self._error: Optional[str] = None
        self.stats = diag.NodeStats()
        self.reporter = diag.BadInputReporter(self.get_logger().warning)
        self.converter, why = make_converter()
        self.get_logger().info(f"image conversion: {self.converter.name}" + (f" ({why})" if why else ""))
        self.cache = FrameCache(self._values["tracking.init_cache_s"])
        # camera_info + TF registration, target ray (node/geometry.py)
        self.geometry = GeometryHelper(self, self._values, lambda: self._apply({"registration.homography"}))

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
        self.create_service(Trigger, "~/clear_target", self._srv_clear_target, callback_group=self._service_group)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=self._diag_group)
        self._autostart_timer = None
        if self._values["autostart"]:
            # from the executor, so services answer while a TensorRT engine builds in on_configure
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # ---- lifecycle ------------------------------------------------------------------------------
    @property
    def lifecycle_state(self) -> str:
        return self._lifecycle

    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == SUCCESS:
            self.trigger_activate()

    def _make_settings(self, values: Dict[str, Any]) -> Settings:
        registration = self.geometry.registration() or P.make_registration(values)
        return Settings(normalizer=P.make_normalizer(values), registration=registration,
                        label=values["tracking.label"], slop_s=float(values["sync.slop"]))

    def _open_backend(self, values: Dict[str, Any]):
        if self._backend_factory is not None:
            return self._backend_factory(dict(values))
        from ckd_ros.runtime import open_backend  # noqa: PLC0415 - torch/TensorRT load only when configuring

        checkpoint, onnx = values["model.checkpoint"] or None, values["model.onnx"] or None
        preset = values["model.preset"]
        if onnx is not None and checkpoint is None:
            preset = None  # an exported file carries its configuration
        elif checkpoint is not None and os.path.isfile(checkpoint):
            from ckd_ros.model import load_config_for  # noqa: PLC0415

            stored = load_config_for(checkpoint)
            if stored is not None:  # converted files carry their configuration; it wins over the preset
                if stored.name != preset:
                    self.get_logger().info(f"{checkpoint} holds a '{stored.name}' model: model.preset ignored")
                preset = None
        return open_backend(
            values["backend"], checkpoint=checkpoint, onnx=onnx,
            preset=preset, precision=values["precision"], device=values["device"] or None,
            cache_dir=values["engine.cache_dir"] or None, workspace_mb=int(values["engine.workspace_mb"]),
            log=self.get_logger().info)

    def on_configure(self, state) -> TransitionCallbackReturn:
        values = dict(self._values)
        backend = None
        try:
            reason = P.validate(values, {}, check_when=False)
            if reason:
                raise ValueError(reason)
            settings = self._make_settings(values)
            t0 = time.monotonic()
            backend = self._open_backend(values)
            tracker = Tracker(backend, P.make_tracker_params(values), settings.registration)
        except Exception as exc:  # CKDError, ValueError, missing files, no GPU...: stay unconfigured
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
        self._lifecycle = "inactive"
        return super().on_configure(state)

    def on_activate(self, state) -> TransitionCallbackReturn:
        values = self._values
        ret = super().on_activate(state)  # enables the lifecycle publishers
        if ret != SUCCESS:
            return ret
        try:
            self.cache.clear()
            self.cache.set_max_age(values["tracking.init_cache_s"])
            compressed = values["transport"] == "compressed"
            self._worker = TrackingWorker(
                self._tracker, self.converter, self.cache, self.stats, self.reporter, lambda: self._settings,
                self._publish_outcome, compressed=compressed, log_warn=self.get_logger().warning)
            self._worker.start()
            rgb_topic, tir_topic = input_topics(values["transport"])
            self._input = PairInput(
                self, CompressedImage if compressed else Image, rgb_topic, tir_topic,
                input_qos(values["qos.reliability"], values["qos.depth"]), values["sync.queue_size"],
                values["sync.slop"], self._on_pair, self.stats.arrival, self._on_backwards,
                callback_group=self._input_group)
        except Exception as exc:
            self._error = f"activate failed: {exc}"
            self.get_logger().error(self._error)
            self._stop_input()
            super().on_deactivate(state)
            return FAILURE
        rgb, tir = self._input.topics
        self.get_logger().info(
            f"active: {rgb} + {tir} ({values['qos.reliability']}, depth {values['qos.depth']}, slop "
            f"{values['sync.slop']} s); call {self.get_fully_qualified_name()}/set_target to start tracking")
        self._lifecycle = "active"
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
            self._tracker.reset()
        self.cache.clear()

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._stop_input()
        self._lifecycle = "inactive"
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
        self._lifecycle = "unconfigured"
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
        self._lifecycle = "finalized" if self._lifecycle != "unconfigured" else "unconfigured"

    # ---- input (executor thread: only hand-over) ----------------------------------------------------
    def _on_pair(self, pair: FramePair) -> None:
        self.stats.paired()
        self.cache.add(pair)
        worker = self._worker
        if worker is not None:
            worker.submit(pair)

    def _on_backwards(self, stream: str, last_ns: int, new_ns: int) -> None:
        self.stats.count("stamp_resets")
        self.cache.clear()
        if self._worker is not None:
            self._worker.reset_stream()
        self.reporter.report(
            "stamps_backwards",
            f"{stream} stamps went backwards ({last_ns / 1e9:.3f} -> {new_ns / 1e9:.3f} s; bag loop or clock "
            "reset?): synchroniser and frame cache reset")

    # ---- output (worker thread) ---------------------------------------------------------------------
    def _publish_outcome(self, outcome: Outcome) -> None:
        if not rclpy.ok(context=self.context):
            return  # Ctrl-C shut the context down while this pair was in flight: nothing to publish to
        t0 = time.perf_counter()
        pair = outcome.decoded.pair
        settings = self._settings
        if outcome.state != "idle" and self._det_pub is not None:
            box = outcome.box if outcome.state == "tracking" else None  # LOST: empty array
            self._det_pub.publish(build_detections(pair.rgb.header, box, outcome.score or 0.0, settings.label,
                                                   outcome.track_id))
            self.stats.count("detections_published")
        self.geometry.publish(outcome)
        self._publish_overlays(outcome, settings)
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
        decoded, pair = outcome.decoded, outcome.decoded.pair
        if want_rgb:
            img = rgb_overlay(decoded.rgb, outcome.box, outcome.score, outcome.state, self.stats.fps(),
                              settings.label)
            self._img_pub.publish(array_to_image_msg(img, "bgr8", pair.rgb.header))
        if want_tir:
            box_t = None if outcome.box is None else settings.registration.box_rgb_to_thermal(outcome.box)
            img = thermal_overlay(decoded.tir8, box_t, outcome.state)
            self._tir_pub.publish(array_to_image_msg(img, "bgr8", pair.thermal.header))

    # ---- services --------------------------------------------------------------------------------
    def _srv_set_target(self, request, response):
        if self._lifecycle != "active" or self._worker is None:
            ok, msg = False, f"node not active (state: {self._lifecycle}); activate it first"
        else:
            fut = self._worker.set_target(parse_request(request.camera_info))
            try:
                ok, msg = fut.result(timeout=SERVICE_TIMEOUT_S)
            except concurrent.futures.TimeoutError:  # not the builtin TimeoutError before 3.11
                ok, msg = False, f"the tracker did not answer within {SERVICE_TIMEOUT_S:.0f} s"
        response.success, response.status_message = ok, msg
        if ok:
            self.get_logger().info(f"set_target: {msg}")
        else:
            self.reporter.report("set_target", f"set_target rejected: {msg}")
        return response

    def _srv_clear_target(self, request, response):
        if self._lifecycle != "active" or self._worker is None:
            response.success = False
            response.message = f"node not active (state: {self._lifecycle}); there is no target to clear"
            return response
        try:
            response.success, response.message = self._worker.clear_target().result(timeout=SERVICE_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            response.success, response.message = False, "the tracker did not answer in time"
        self.get_logger().info(f"clear_target: {response.message}")
        return response

    # ---- parameters -------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {}
        for p in parameters:
            spec = P.SPEC_BY_NAME.get(p.name)
            changes[p.name] = _value(spec, p.value) if spec else p.value
        reason = P.validate(changes, self._values, self._lifecycle)
        if reason:
            self.get_logger().warning(f"parameter change rejected: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        self._values.update(changes)
        self._apply(set(changes))
        return SetParametersResult(successful=True)

    def _apply(self, names) -> None:
        values = self._values
        self.geometry.on_parameters(names)
        if self._settings is not None and names & {"thermal.normalization", "thermal.percentiles", "thermal.range",
                                                   "thermal.invert", "registration.homography", "tracking.label",
                                                   "sync.slop", "registration.mode", "registration.depth_m"}:
            self._settings = self._make_settings(values)  # one atomic swap the worker picks up per pair
            if self._tracker is not None:
                self._tracker.registration = self._settings.registration
        if self._tracker is not None and names & {"tracking.lost_threshold", "tracking.lost_frames"}:
            self._tracker.params = P.make_tracker_params(values)
        if "sync.slop" in names and self._input is not None:
            self._input.set_slop(values["sync.slop"])
        if "tracking.init_cache_s" in names:
            self.cache.set_max_age(values["tracking.init_cache_s"])

    # ---- diagnostics ------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        snap = self.stats.snapshot()
        target = self._tracker.state.value if self._tracker is not None else "idle"
        level, message = diag.assess(snap, self.reporter.recent(), self._lifecycle, target, self._error,
                                     float(self._values["sync.slop"]))
        backend = self._backend
        extra = {
            "lifecycle": self._lifecycle,
            "state": target,
            "backend": "none" if backend is None else getattr(backend, "describe", lambda: backend.name)(),
            "image_conversion": self.converter.name,
            "frame_cache_pairs": str(len(self.cache)),
        }
        worker = self._worker
        if worker is not None and worker.busy_since is not None:
            extra["worker_busy_s"] = f"{time.monotonic() - worker.busy_since:.2f}"
        geo_values, geo_warning = self.geometry.diagnostics(self._settings.registration if self._settings else None)
        extra.update(geo_values)
        if geo_warning:
            level, message = max(level, diag.WARN), (geo_warning if level == diag.OK else f"{message}; {geo_warning}")
        values = diag.key_values(snap, extra, self.reporter.totals())
        name = f"{self.get_name()}: tracker"
        self._diag_pub.publish(diag.build_array(self.get_clock().now().to_msg(), name,
                                                self.get_fully_qualified_name(), level, message, values))


def main(args=None) -> int:
    from ckd_ros.node import handle_help

    handle_help("ckd_tracker", "CKD RGB-thermal tracker lifecycle node. Parameters: config/ckd_tracker.yaml "
                "(--ros-args --params-file FILE); usually started with `ros2 launch ckd_ros ckd_tracker.launch.py`.",
                args)
    rclpy.init(args=args)
    node = None
    executor = MultiThreadedExecutor(num_threads=4)
    try:
        node = CkdTrackerNode()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.teardown()
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
