"""The node as robots drive it (issue 12), against real rclpy: stamps as drivers really fill them,
synchronisation under arrival delay and clock offsets, parameters as people write them, several
trackers side by side, bounded service answers whatever the backend does, and what goes wrong
showing in /diagnostics (QoS incompatibility, drop reasons, pinned frames for the picker).
"""
from __future__ import annotations

import math
import threading
import time

import pytest
from test_node_support import Harness, MovingTarget, domain_id, executor_params, tiny_backend, wait_active, wait_for

pytestmark = pytest.mark.ros

NEVER_LOST = {"tracking.lost_threshold": 0.0}
STEP = 50_000_000  # 20 Hz stamps


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def play(h, scene, stamps, period=0.05, tir_stamps=None):
    """Publish scene frame k for each (k, stamp); thermal stamped `tir_stamps[i]` if given."""
    for i, (k, stamp) in enumerate(stamps):
        rgb, tir = scene.frame(k)
        h.publish_pair(rgb, tir, stamp) if tir_stamps is None else _pair_split(h, rgb, tir, stamp, tir_stamps[i])
        time.sleep(period)


def _pair_split(h, rgb, tir, rgb_stamp, tir_stamp):
    from ckd_ros.frames.ros_image import array_to_image_msg

    h.rgb_pub.publish(array_to_image_msg(rgb, "rgb8", stamp_ns=rgb_stamp, frame_id="camera_rgb"))
    h.tir_pub.publish(array_to_image_msg(tir, "mono16", stamp_ns=tir_stamp, frame_id="camera_thermal"))


# ---- kind 1: time as drivers stamp it ------------------------------------------------------------

def test_zero_stamps_are_tracked_and_named_in_a_warning(make_harness):
    h = make_harness(overrides=NEVER_LOST)
    wait_active(h)
    scene = MovingTarget()
    play(h, scene, [(k, 0) for k in range(4)])
    assert wait_for(lambda: len(h.node.cache) >= 1, 5.0)
    assert h.set_target(scene.box(3)).success
    start = h.n_dets()
    play(h, scene, [(k, 0) for k in range(4, 34)], period=0.08)
    assert wait_for(lambda: h.n_dets() - start >= 10, 10.0), "zero-stamped pairs must still be tracked"
    assert all(stamp_of(d) == 0 for d in h.dets_since(start))
    values = h.wait_diag(lambda v: "header.stamp is 0" in v["_message"], 3.0)
    assert values["_level"] == 1 and "header.stamp is 0" in values["_message"]
    assert int(values["stamps.zero_rgb"]) >= 30 and int(values.get("stamp_resets", 0)) == 0


def test_reordered_stamps_keep_the_cache_a_real_jump_resets(make_harness):
    h = make_harness(overrides=NEVER_LOST)
    wait_active(h)
    scene = MovingTarget()
    base = time.time_ns()
    order = []
    for k in range(40):  # every 8th pair one frame late
        order.append(k + 1 if k % 8 == 0 else (k - 1 if k % 8 == 1 else k))
    play(h, scene, [(k, base + k * STEP) for k in order[:6]])
    assert wait_for(lambda: len(h.node.cache) >= 3, 5.0)
    assert h.set_target(scene.box(order[5])).success
    play(h, scene, [(k, base + k * STEP) for k in order[6:]])
    time.sleep(0.3)
    counters = h.node.stats.snapshot()["counters"]
    assert counters.get("stamp_resets", 0) == 0, "one-frame reordering is not a bag loop"
    old = base + 30 * STEP  # 0.45 s before the newest: what a picker on a frozen frame sends
    res = h.set_target(scene.box(30), stamp_ns=old)
    assert res.success, res.status_message
    assert "(rgb stamp match)" in res.status_message
    # a real jump back (bag loop) resets, and tracking resumes on the new stamps
    play(h, scene, [(k, base - 10**10 + k * STEP) for k in range(40, 46)])
    assert wait_for(lambda: h.node.stats.snapshot()["counters"].get("stamp_resets", 0) == 1, 5.0)
    values = h.wait_diag(lambda v: "jumped back" in v["_message"], 3.0)
    assert "sync.reorder_window" in values["_message"]


def test_diagnostics_never_ok_while_a_target_is_set_and_nothing_is_published(make_harness):
    h = make_harness(overrides=NEVER_LOST)
    wait_active(h)
    h.start_tracking()
    time.sleep(0.5)
    h.stop_stream()
    from ckd_ros.frames.ros_image import array_to_image_msg

    scene = MovingTarget()
    stop = time.monotonic() + 4.0
    while time.monotonic() < stop:  # RGB only: pairs cannot form, the target stays set
        h.rgb_pub.publish(array_to_image_msg(scene.frame(0)[0], "rgb8", stamp_ns=time.time_ns(), frame_id="c"))
        time.sleep(0.05)
    values = h.wait_diag(lambda v: "target set but no detection published" in v["_message"], 3.0)
    assert values["_level"] == 1 and values["state"] == "tracking"
    assert "target set but no detection published" in values["_message"]


# ---- kind 2: synchronisation under real latency ---------------------------------------------------

def _late_thermal(h, scene, seconds, latency, tir_shift=0.0):
    """RGB 30 Hz and thermal 9 Hz stamped on one clock; thermal delivered `latency` s late and
    stamped `tir_shift` s early. Returns the thermal stamps published."""
    from ckd_ros.frames.ros_image import array_to_image_msg

    base = time.time_ns()
    events = [(k / 30.0, "rgb", k / 30.0) for k in range(int(seconds * 30))]
    events += [(j / 9.0 + 0.013 + latency, "tir", j / 9.0 + 0.013) for j in range(int(seconds * 9))]
    t0 = time.monotonic()
    sent = []
    for when, kind, cap in sorted(events):
        time.sleep(max(0.0, t0 + when - time.monotonic()))
        rgb, tir = scene.frame(int(cap * 20))
        ns = base + int(cap * 1e9)
        if kind == "rgb":
            h.rgb_pub.publish(array_to_image_msg(rgb, "rgb8", stamp_ns=ns, frame_id="camera_rgb"))
        else:
            ns -= int(tir_shift * 1e9)
            h.tir_pub.publish(array_to_image_msg(tir, "mono16", stamp_ns=ns, frame_id="camera_thermal"))
            sent.append(ns)
    return sent


def test_thermal_delivered_late_pairs_with_defaults_and_short_queue_names_max_delay(make_harness):
    h = make_harness(overrides=NEVER_LOST)
    wait_active(h)
    scene = MovingTarget()
    before = h.node.stats.snapshot()["counters"].get("pairs_received", 0)
    sent = _late_thermal(h, scene, 3.0, 0.4)
    time.sleep(0.6)
    paired = h.node.stats.snapshot()["counters"]["pairs_received"] - before
    assert paired >= len(sent) - 2, f"{paired} pairs of {len(sent)} thermal frames"
    assert h.set_params(sync__max_delay=0.1)[0].successful
    _late_thermal(h, scene, 4.0, 0.4)
    values = h.wait_diag(lambda v: "sync.max_delay" in v["_message"], 3.0)
    assert "queue too short" in values["_message"] and "raise sync.max_delay" in values["_message"]
    assert "thermal_offset" not in values["_message"]
    assert int(values["sync.dropped.no_partner_rgb"]) > 0


def test_clock_offset_is_named_and_thermal_offset_fixes_it(make_harness):
    h = make_harness(overrides=NEVER_LOST)
    wait_active(h)
    scene = MovingTarget()
    _late_thermal(h, scene, 3.0, 0.0, tir_shift=3.0)  # the thermal driver's clock is 3 s behind
    values = h.wait_diag(lambda v: "thermal_offset" in v["_message"], 3.0)
    assert "different clocks" in values["_message"] and "max_delay" not in values["_message"]
    assert h.set_params(sync__thermal_offset=3)[0].successful  # an integer for a double
    before = h.node.stats.snapshot()["counters"].get("pairs_received", 0)
    sent = _late_thermal(h, scene, 2.0, 0.0, tir_shift=3.0)
    time.sleep(0.3)
    assert h.node.stats.snapshot()["counters"]["pairs_received"] - before >= len(sent) - 2
    pair = h.node.cache.newest()
    assert abs(pair.rgb_stamp_ns - pair.thermal_stamp_ns - 3 * 10**9) < 20_000_000, "stamps kept as published"


# ---- kind 3: parameters as people write them -------------------------------------------------------

def _context_with_params(tmp_path, text):
    import rclpy
    from rclpy.context import Context

    path = tmp_path / "params.yaml"
    path.write_text("/**:\n  ros__parameters:\n" + text)
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id(), args=["--ros-args", "--params-file", str(path)])
    return ctx


def test_params_file_integers_for_doubles_are_accepted(tmp_path):
    from test_node_support import shutdown_context

    ctx = _context_with_params(tmp_path, "    tracking.lost_threshold: 0\n    sync.slop: 1\n"
                                         "    thermal.range: [7000, 9000]\n    thermal.normalization: fixed\n"
                                         "    registration.homography: [1, 0, 0, 0, 1, 0, 0, 0, 1]\n")
    h = Harness(ctx, namespace="/ints")
    try:
        wait_active(h)
        node = h.node
        assert node._values["tracking.lost_threshold"] == 0.0 and node.sync.slop_ns == 10**9
        assert tuple(node._settings.normalizer.value_range) == (7000.0, 9000.0)
        p = node.get_parameter("thermal.range")
        assert list(p.value) == [7000.0, 9000.0] and p.type_.name == "DOUBLE_ARRAY", "stored as doubles"
        assert node.get_parameter("tracking.lost_threshold").type_.name == "DOUBLE"
        scene = h.start_tracking()
        assert scene is not None and wait_for(lambda: h.n_dets() >= 3, 10.0)
    finally:
        h.close()
        shutdown_context(ctx)


def test_params_file_type_error_is_one_line_and_the_node_lives(tmp_path):
    from test_node_support import shutdown_context

    ctx = _context_with_params(tmp_path, "    sync.max_delay: \"fast\"\n    tracking.lost_frames: 2.5\n")
    h = Harness(ctx, namespace="/typo")
    try:
        node = h.node
        assert node._param_errors.keys() == {"sync.max_delay", "tracking.lost_frames"}
        assert "sync.max_delay: 'fast' is a string, expected a double" in node._param_errors["sync.max_delay"]
        assert "\n" not in node._param_errors["sync.max_delay"]
        assert wait_for(lambda: node._error is not None and node.lifecycle_state == "unconfigured", 10.0)
        assert "sync.max_delay: 'fast'" in node._error
        values = h.wait_diag(lambda v: v["_level"] == 2, 5.0)
        assert "expected a double" in values["_message"]
        # fixed at runtime: configure and activate succeed
        assert all(r.successful for r in h.set_params(sync__max_delay=1, tracking__lost_frames=3))
        assert node.trigger_configure() is not None and node.lifecycle_state == "inactive"
        node.trigger_activate()
        assert node.lifecycle_state == "active" and node.sync.max_delay_s == 1.0
    finally:
        h.close()
        shutdown_context(ctx)


# ---- kind 5: many trackers on one robot ---------------------------------------------------------------

def test_two_trackers_side_by_side_in_one_process(ctx):
    """Same node name in two namespaces, one process, one executor: every identity apart."""
    front = Harness(ctx, overrides=NEVER_LOST, namespace="/front")
    rear = Harness(ctx, overrides=NEVER_LOST, namespace="/rear")
    try:
        for h in (front, rear):
            wait_active(h)
        assert front.node.get_name() == rear.node.get_name() == "ckd_tracker"
        sc_front = front.start_tracking()
        sc_rear = rear.start_tracking()
        assert sc_front is not None and sc_rear is not None
        assert wait_for(lambda: front.n_dets() >= 5 and rear.n_dets() >= 5, 15.0)
        # each tracker saw only its own cameras
        front_stamps, rear_stamps = set(front.published), set(rear.published)
        assert all(stamp_of(d) in front_stamps for d in front.dets_since(1))
        assert all(stamp_of(d) in rear_stamps for d in rear.dets_since(1))
        statuses = {}

        def both():
            with front._lock:
                msgs = list(front.diagnostics)
            for m in msgs:
                for s in m.status:
                    if s.name.endswith(": tracker"):
                        statuses[s.name] = s.hardware_id
            return {"/front/ckd_tracker: tracker", "/rear/ckd_tracker: tracker"} <= set(statuses)

        assert wait_for(both, 5.0), statuses
        assert statuses["/front/ckd_tracker: tracker"] == "/front/ckd_tracker"
        assert statuses["/rear/ckd_tracker: tracker"] == "/rear/ckd_tracker"
        assert front.node.get_logger().name != rear.node.get_logger().name
        assert front.node._worker._thread.name == "/front/ckd_tracker/worker"
        assert front.node.cache is not rear.node.cache
        assert front.clear_target().success
        time.sleep(0.3)
        n = rear.n_dets()
        assert wait_for(lambda: rear.n_dets() >= n + 3, 10.0), "clearing one tracker must not stop the other"
    finally:
        front.close()
        rear.close()


# ---- kind 6: bounded answers, one error family ---------------------------------------------------

class FailingTemplate:
    """A backend whose template inference raises a CKDError (a TensorRT engine gone bad)."""

    def __init__(self) -> None:
        self._inner = tiny_backend()
        self.config = self._inner.config
        self.name = "failing"

    def set_template(self, z_rgb, z_tir):
        from ckd_ros.errors import BackendError

        raise BackendError("CUDA error: an illegal memory access was encountered; restart the node")

    def infer_search(self, x_rgb, x_tir):
        return self._inner.infer_search(x_rgb, x_tir)

    def describe(self):
        return "failing stub"

    def close(self):
        self._inner.close()


class HangingSearch(FailingTemplate):
    """Template fine, every search inference blocks (a wedged GPU) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def set_template(self, z_rgb, z_tir):
        self._inner.set_template(z_rgb, z_tir)

    def infer_search(self, x_rgb, x_tir):
        self.release.wait(60.0)
        return self._inner.infer_search(x_rgb, x_tir)


def test_backend_failing_in_set_target_answers_at_once_with_the_stage(make_harness):
    h = make_harness(overrides=NEVER_LOST, backend_factory=lambda values: FailingTemplate())
    wait_active(h)
    h.stream(MovingTarget(), 20.0)
    assert wait_for(lambda: len(h.node.cache) >= 2, 10.0)
    t0 = time.monotonic()
    res = h.set_target((50, 50, 40, 30))
    elapsed = time.monotonic() - t0
    assert not res.success and res.status_message.startswith("inference: CUDA error"), res.status_message
    assert elapsed < 5.0, f"answered after {elapsed:.1f} s"
    assert h.node.stats.snapshot()["counters"]["errors.inference"] == 1
    assert h.node._worker._thread.is_alive(), "the worker survives"
    assert h.clear_target().success


@pytest.mark.parametrize("executor", executor_params())
def test_services_answer_within_the_timeout_while_the_backend_hangs(make_harness, executor):
    stub = HangingSearch()
    h = make_harness(executor=executor, overrides=dict(NEVER_LOST, **{"tracking.service_timeout_s": 1.0}),
                     backend_factory=lambda values: stub)
    try:
        wait_active(h)
        scene = MovingTarget()
        h.stream(scene, 20.0)
        assert wait_for(lambda: len(h.node.cache) >= 2, 10.0)
        assert h.set_target(scene.box(h.published[max(h.published)])).success  # template only
        assert wait_for(lambda: h.node._worker.busy_since is not None, 5.0)  # now stuck in a search
        t0 = time.monotonic()
        res = h.set_target((10, 10, 40, 30))
        assert time.monotonic() - t0 < 4.0
        assert not res.success and "did not answer within 1.0 s" in res.status_message
        assert "busy with a pair" in res.status_message
        res = h.clear_target()
        assert not res.success and "did not answer" in res.message
    finally:
        stub.release.set()
    state = h.node._tracker.state.value
    time.sleep(0.5)
    assert h.node._tracker.state.value == state == "tracking", "a cancelled request never runs late"


def test_frame_cache_bounded_in_bytes(make_harness):
    h = make_harness(overrides=dict(NEVER_LOST, **{"tracking.init_cache_mb": 1}))
    wait_active(h)
    h.stream(MovingTarget(), 20.0)  # 320x256 rgb8 + mono16 = 0.4 MB a pair
    assert wait_for(lambda: h.node.stats.snapshot()["counters"].get("pairs_received", 0) >= 10, 10.0)
    assert len(h.node.cache) <= 2 and h.node.cache.nbytes <= 2**20
    values = h.wait_diag(lambda v: "frame_cache_mb" in v, 3.0)
    assert float(values["frame_cache_mb"]) <= 1.0


# ---- kind 7: observability --------------------------------------------------------------------------------

def test_qos_incompatibility_appears_in_diagnostics(make_harness):
    h = make_harness(overrides={"qos.reliability": "reliable"}, pub_reliability="best_effort")
    wait_active(h)
    values = h.wait_diag(lambda v: "incompatible" in v["_message"], 8.0)
    assert values["_level"] == 1, values
    assert "RELIABILITY" in values["_message"] and "qos.reliability" in values["_message"]
    assert int(values["qos.qos_incompatible_rgb"]) >= 1 and int(values["qos.qos_incompatible_thermal"]) >= 1


# ---- the picker: a frozen frame stays selectable ----------------------------------------------------------

def test_pinned_frame_selectable_long_after_it_left_the_cache(make_harness):
    from sensor_msgs.srv import SetCameraInfo

    h = make_harness(overrides=dict(NEVER_LOST, **{"tracking.init_cache_s": 0.5}))
    wait_active(h)
    scene = MovingTarget()
    h.stream(scene, 20.0)
    assert wait_for(lambda: len(h.node.cache) >= 5, 10.0)
    frozen = h.node.cache.newest()
    pin = h.client.create_client(SetCameraInfo, f"{h.node.get_fully_qualified_name()}/pin_frame")
    req = SetCameraInfo.Request()
    req.camera_info.header.stamp.sec = frozen.rgb_stamp_ns // 10**9
    req.camera_info.header.stamp.nanosec = frozen.rgb_stamp_ns % 10**9
    res = h.call(pin, req)
    assert res.success and "pinned the rgb frame" in res.status_message, res.status_message
    time.sleep(2.5)  # the user is still drawing; the stream moves on
    assert h.node.cache.span()[0] > frozen.rgb_stamp_ns, "the frame left the rolling cache"
    k = h.published[frozen.rgb_stamp_ns]
    res = h.set_target(scene.box(k), stamp_ns=frozen.rgb_stamp_ns)
    assert res.success, res.status_message
    assert f"frame {frozen.rgb_stamp_ns // 10**9}." in res.status_message
    req.camera_info.header.stamp.sec = 1
    res = h.call(pin, req)
    assert not res.success and "not in the frame cache" in res.status_message


def test_node_module_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, ckd_ros.node.tracker_node, ckd_ros.node.input_sync; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]


class NaNMaps(FailingTemplate):
    """Template fine; every search returns NaN maps (an fp16 engine that overflowed)."""

    def set_template(self, z_rgb, z_tir):
        self._inner.set_template(z_rgb, z_tir)

    def infer_search(self, x_rgb, x_tir):
        import numpy as np

        maps = self._inner.infer_search(x_rgb, x_tir)
        return {k: np.full_like(v, np.nan) for k, v in maps.items()}


def test_nonfinite_network_outputs_counted_and_warned(make_harness):
    import dataclasses

    from ckd_ros.tracking.tracker import TrackResult

    if "nonfinite" not in {f.name for f in dataclasses.fields(TrackResult)}:
        pytest.skip("this tracker has no non-finite output guard yet (TrackResult.nonfinite)")
    h = make_harness(overrides=NEVER_LOST, backend_factory=lambda values: NaNMaps())
    wait_active(h)
    scene = h.start_tracking()
    assert scene is not None
    values = h.wait_diag(lambda v: int(v.get("errors.nonfinite_outputs", 0)) >= 3, 10.0)
    assert int(values["errors.nonfinite_outputs"]) >= 3 and "NaN/inf maps" in values["_message"]
    assert all(math.isfinite(d.detections[0].bbox.size_x) for d in h.dets_since(0) if d.detections)


@pytest.mark.parametrize("executor", executor_params())
def test_clock_jump_back_resets_the_input(make_harness, executor):
    """use_sim_time with a bag replayed in a loop: /clock jumps back and the input resets (the jump
    callback and the diagnostics timer on sim time, on both executors)."""
    from rosgraph_msgs.msg import Clock

    h = make_harness(executor=executor, overrides=dict(NEVER_LOST, use_sim_time=True))
    wait_active(h)
    clock_pub = h.client.create_publisher(Clock, "/clock", 10)
    scene = MovingTarget()
    t = 1000 * 10**9

    def tick(k):
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = (t + k * STEP) // 10**9, (t + k * STEP) % 10**9
        clock_pub.publish(msg)

    for k in range(6):
        tick(k)
        rgb, tir = scene.frame(k)
        h.publish_pair(rgb, tir, t + k * STEP)
        time.sleep(0.05)
    assert wait_for(lambda: len(h.node.cache) >= 3, 5.0)
    assert wait_for(lambda: h.node.get_clock().now().nanoseconds >= t + 4 * STEP, 5.0), "sim time not running"
    t -= 30 * 10**9  # the bag starts over: /clock 30 s back
    tick(0)
    assert wait_for(lambda: h.node.stats.snapshot()["counters"].get("stamp_resets", 0) >= 1, 5.0)
    assert len(h.node.cache) == 0
    start = h.n_diags()
    for k in range(1, 60):  # diagnostics run on the node's (sim) clock: let it advance
        tick(k)
        time.sleep(0.05)
        if h.last_diag_values(start) is not None:
            break
    values = h.last_diag_values(start)
    assert values is not None and "clock jumped -30." in values["_message"], values


def test_node_tracks_exactly_like_the_offline_tracker(make_harness):
    """Pair by pair (each published after the previous detection), the node's boxes equal the offline
    Tracker's on the same frames, thermal at half resolution through a homography."""
    import numpy as np

    from ckd_ros.node import params
    from ckd_ros.tracking import Registration, Tracker

    scene = MovingTarget(thermal_scale=0.5)
    overrides = dict(NEVER_LOST, **{"registration.homography": scene.homography(),
                                    "thermal.normalization": "percentile"})
    h = make_harness(overrides=overrides)
    wait_active(h)
    base = time.time_ns()
    rgb, tir = scene.frame(0)
    h.publish_pair(rgb, tir, base)
    assert wait_for(lambda: len(h.node.cache) >= 1, 5.0)
    assert h.set_target(scene.box(0), stamp_ns=base).success
    got = {}
    for k in range(1, 16):
        n = h.n_dets()
        rgb, tir = scene.frame(k)
        h.publish_pair(rgb, tir, base + k * STEP)
        assert wait_for(lambda n=n: h.n_dets() > n, 10.0), f"no detection for frame {k}"
        det = h.dets_since(n)[-1]
        c = det.detections[0].bbox
        got[k] = (c.center.position.x - c.size_x / 2, c.center.position.y - c.size_y / 2, c.size_x, c.size_y)
    values = dict(params.defaults(), **overrides)
    offline = Tracker(h.node._backend, params.make_tracker_params(values), Registration(scene.homography()))
    normalizer = params.make_normalizer(values)
    rgb, tir = scene.frame(0)
    offline.initialize(rgb, normalizer(tir), scene.box(0))
    for k in range(1, 16):
        rgb, tir = scene.frame(k)
        box = offline.track(rgb, normalizer(tir)).box_xywh
        np.testing.assert_allclose(got[k], box, atol=1e-3, err_msg=f"frame {k}")


def test_ctrl_c_inside_the_events_executor_is_a_clean_stop():
    """rclpy's EventsExecutor can raise RuntimeError from spin() when Ctrl-C lands while it converts a
    message for a callback (seen in CI launch tests); rclpy's signal handler shuts the context down
    from its own thread, just before or just after: a clean stop. A RuntimeError while the context
    stays up is a real failure and must propagate."""
    import threading

    from test_node_support import make_context, shutdown_context

    from ckd_ros.node.tracker_node import spin_until_shutdown

    class Raising:
        def __init__(self, ctx, stop_after_s):
            self.ctx, self.stop_after_s = ctx, stop_after_s

        def spin(self):
            if self.stop_after_s == 0.0:
                shutdown_context(self.ctx)
            elif self.stop_after_s is not None:  # the signal handler's thread, a moment later
                threading.Timer(self.stop_after_s, shutdown_context, (self.ctx,)).start()
            raise RuntimeError("Unable to convert call argument '0' of type 'object' to Python object")

    for after in (0.0, 0.3):
        ctx = make_context()
        spin_until_shutdown(Raising(ctx, after), context=ctx)  # no exception: the stop
    ctx = make_context()
    try:
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="Unable to convert"):
            spin_until_shutdown(Raising(ctx, None), context=ctx, grace_s=0.5)
        assert time.monotonic() - t0 >= 0.5
    finally:
        shutdown_context(ctx)
