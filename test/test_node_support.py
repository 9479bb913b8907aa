"""Helpers for the node tests (no tests here): a moving hot rectangle, a tiny random-weight backend,
and a harness that runs the real node and a client node on one executor in a background thread.

Everything talks through real rclpy: publishers, subscriptions, service calls, parameter services.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, List, Optional

import numpy as np


def domain_id() -> int:
    """One DDS domain per test process, so engineers running tests side by side do not cross-talk."""
    return int(os.environ.get("CKD_TEST_DOMAIN_ID") or 1 + os.getpid() % 100)


def executor_params():
    """pytest params for the executors `ckd_tracker` can run on (parameter `executor`); `events` skips,
    with the reason, on an rclpy without EventsExecutor (Humble)."""
    import pytest

    try:
        from ckd_ros.node.tracker_node import events_executor_missing
        missing = events_executor_missing()
    except ImportError as exc:  # no rclpy in this environment: the ros-marked tests do not run here
        missing = f"rclpy is not importable ({exc})"
    return [pytest.param("multi_threaded"),
            pytest.param("events", marks=pytest.mark.skipif(missing is not None, reason=missing or ""))]


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class MovingTarget:
    """A bright (RGB) and hot (thermal) rectangle moving on a dim, textured background.

    `thermal_scale` < 1 renders the thermal frame at a lower resolution (thermal = RGB * scale), so
    the thermal -> RGB homography is diag(1/scale, 1/scale, 1).
    """

    def __init__(self, width: int = 320, height: int = 256, box_size=(40, 30), speed: float = 2.0,
                 thermal_scale: float = 1.0, seed: int = 0) -> None:
        self.width, self.height = width, height
        self.bw, self.bh = box_size
        self.speed = speed
        self.thermal_scale = thermal_scale
        rng = np.random.default_rng(seed)
        self._rgb_bg = rng.integers(20, 60, size=(height, width, 3), dtype=np.uint8)
        tw, th = int(round(width * thermal_scale)), int(round(height * thermal_scale))
        self._tir_bg = rng.integers(7000, 7400, size=(th, tw)).astype(np.uint16)

    def box(self, k: int) -> tuple:
        """(x, y, w, h) of frame k in RGB pixels: a bounce across the image."""
        span_x, span_y = self.width - self.bw - 2, self.height - self.bh - 2
        t = k * self.speed
        x = abs((t + span_x) % (2 * span_x) - span_x)
        y = abs((0.6 * t + span_y / 2) % (2 * span_y) - span_y)
        return float(x), float(y), float(self.bw), float(self.bh)

    def frame(self, k: int):
        x, y, w, h = (int(round(v)) for v in self.box(k))
        rgb = self._rgb_bg.copy()
        rgb[y:y + h, x:x + w] = (230, 220, 40)
        tir = self._tir_bg.copy()
        s = self.thermal_scale
        tx, ty, tw, th = int(round(x * s)), int(round(y * s)), max(int(round(w * s)), 1), max(int(round(h * s)), 1)
        tir[ty:ty + th, tx:tx + tw] = 9000
        return rgb, tir

    def homography(self) -> List[float]:
        s = 1.0 / self.thermal_scale
        return [s, 0.0, 0.0, 0.0, s, 0.0, 0.0, 0.0, 1.0]


class DelayedBackend:
    """Wraps a backend and sleeps in every search inference: deterministic 'slow network' for load tests."""

    def __init__(self, inner, delay_s: float) -> None:
        self._inner = inner
        self.delay_s = delay_s
        self.name = f"{inner.name}+{int(delay_s * 1000)}ms"
        self.config = getattr(inner, "config", None)

    def set_template(self, z_rgb, z_tir):
        self._inner.set_template(z_rgb, z_tir)

    def infer_search(self, x_rgb, x_tir):
        time.sleep(self.delay_s)
        return self._inner.infer_search(x_rgb, x_tir)

    def infer(self, *args):
        time.sleep(self.delay_s)
        return self._inner.infer(*args)

    def describe(self) -> str:
        return f"{self._inner.describe()} + {self.delay_s * 1000:.0f} ms delay"

    def close(self) -> None:
        self._inner.close()


def tiny_backend(delay_s: float = 0.0):
    """A random-weight CKD student small enough for 2 CPU cores (64/128 px crops, 2 blocks)."""
    import torch

    from ckd_ros.model import CKDConfig, CKDStudent
    from ckd_ros.runtime.torch_backend import TorchBackend

    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = CKDConfig(embed_dim=16, depth=2, num_heads=2, head_channels=8, template_size=64, search_size=128,
                    name="tiny_test")
    backend = TorchBackend(CKDStudent(cfg).eval(), device="cpu")
    return DelayedBackend(backend, delay_s) if delay_s > 0 else backend


def tiny_factory(delay_s: float = 0.0, opened: Optional[list] = None):
    def factory(values):
        backend = tiny_backend(delay_s)
        if opened is not None:
            opened.append(backend)
        return backend
    return factory


class Harness:
    """The node under test plus a client node, spun by one MultiThreadedExecutor in a thread.

    `executor="events"`: the node is spun as `ckd_tracker`'s main() spins it with `executor: events`
    (rclpy's EventsExecutor), the client by its own MultiThreadedExecutor in a second thread."""

    def __init__(self, context, overrides: Optional[dict] = None, backend_factory=None, namespace: str = "",
                 node_name: str = "ckd_tracker", pub_reliability: str = "best_effort",
                 executor: str = "multi_threaded") -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from sensor_msgs.srv import SetCameraInfo
        from std_srvs.srv import Trigger
        from vision_msgs.msg import Detection2DArray

        from ckd_ros.node.tracker_node import CkdTrackerNode

        self.context = context
        overrides = dict(overrides or {})
        params = [Parameter(k, value=v) for k, v in overrides.items()]
        self.node = CkdTrackerNode(node_name, backend_factory=backend_factory or tiny_factory(),
                                   namespace=namespace, context=context, parameter_overrides=params)
        self.client = rclpy.create_node(f"test_client_{os.getpid()}", context=context)
        base = self.node.get_fully_qualified_name()
        rel = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
        qos = QoSProfile(depth=5, reliability=rel[pub_reliability])
        ns = namespace.rstrip("/") if namespace else ""
        self.rgb_pub = self.client.create_publisher(Image, f"{ns}/rgb/image", qos)
        self.tir_pub = self.client.create_publisher(Image, f"{ns}/thermal/image", qos)
        self.detections: List = []
        self.det_times: List[float] = []
        self.diagnostics: List = []
        self._lock = threading.Lock()
        self.client.create_subscription(Detection2DArray, f"{base}/detections", self._on_det, 50)
        self.client.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.set_target_cli = self.client.create_client(SetCameraInfo, f"{base}/set_target")
        self.clear_target_cli = self.client.create_client(Trigger, f"{base}/clear_target")
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self.executor.add_node(self.client)
        self._executors = [self.executor]
        if executor == "multi_threaded":
            self.executor.add_node(self.node)
        else:
            from ckd_ros.node.tracker_node import make_executor

            node_executor, name = make_executor(executor, context=context)
            assert name == executor
            node_executor.add_node(self.node)
            self._executors.append(node_executor)
        self._threads = [threading.Thread(target=self._spin, args=(ex,), daemon=True) for ex in self._executors]
        for t in self._threads:
            t.start()
        self._pub_thread: Optional[threading.Thread] = None
        self._stop_pub = threading.Event()

    @staticmethod
    def _spin(executor) -> None:
        try:
            executor.spin()
        except Exception:  # context shut down at the end of a test
            pass

    def _on_det(self, msg) -> None:
        with self._lock:
            self.detections.append(msg)
            self.det_times.append(time.time())

    def _on_diag(self, msg) -> None:
        with self._lock:
            self.diagnostics.append(msg)

    # ---- publishing --------------------------------------------------------------------------------
    def publish_pair(self, rgb: np.ndarray, tir: np.ndarray, stamp_ns: int, rgb_encoding: str = "rgb8",
                     tir_encoding: str = "mono16", rgb_frame: str = "camera_rgb", tir_frame: str = "camera_thermal",
                     rgb_msg=None, tir_msg=None):
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        from ckd_ros.frames.ros_image import array_to_image_msg

        stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        if rgb_msg is None:
            rgb_msg = array_to_image_msg(rgb, rgb_encoding, Header(stamp=stamp, frame_id=rgb_frame))
        if tir_msg is None:
            tir_msg = array_to_image_msg(tir, tir_encoding, Header(stamp=stamp, frame_id=tir_frame))
        self.rgb_pub.publish(rgb_msg)
        self.tir_pub.publish(tir_msg)
        return rgb_msg, tir_msg

    def stream(self, scene: MovingTarget, rate_hz: float, start_k: int = 0, duration: Optional[float] = None,
               stamp_fn=None) -> None:
        """Publish scene frames at `rate_hz` from a thread (stamps = wall clock) until stop_stream()."""
        self._stop_pub.clear()
        self.published = {}

        def run():
            k, t0 = start_k, time.monotonic()
            while not self._stop_pub.is_set():
                if duration is not None and time.monotonic() - t0 > duration:
                    break
                rgb, tir = scene.frame(k)
                ns = stamp_fn(k) if stamp_fn else time.time_ns()
                self.publish_pair(rgb, tir, ns)
                self.published[ns] = k
                k += 1
                next_t = t0 + (k - start_k) / rate_hz
                time.sleep(max(0.0, next_t - time.monotonic()))

        self._pub_thread = threading.Thread(target=run, daemon=True)
        self._pub_thread.start()

    def stop_stream(self) -> None:
        self._stop_pub.set()
        if self._pub_thread is not None:
            self._pub_thread.join(5.0)
            self._pub_thread = None

    # ---- services / params ---------------------------------------------------------------------------
    def call(self, client, request, timeout: float = 30.0):
        assert client.wait_for_service(timeout_sec=10.0), f"service {client.srv_name} not available"
        fut = client.call_async(request)
        assert wait_for(fut.done, timeout), f"service {client.srv_name} did not answer in {timeout} s"
        return fut.result()

    def start_tracking(self, rate_hz: float = 20.0, min_pairs: int = 3) -> MovingTarget:
        """Stream a moving target, then set it on the newest published frame; returns the scene."""
        scene = MovingTarget()
        self.stream(scene, rate_hz)
        assert wait_for(lambda: len(self.node.cache) >= min_pairs, 10.0), "no synchronised pairs arrived"
        assert self.set_target(scene.box(self.published[max(self.published)])).success
        return scene

    def set_target(self, box, stamp_ns: int = 0, frame_id: str = "", timeout: float = 30.0):
        from sensor_msgs.srv import SetCameraInfo

        req = SetCameraInfo.Request()
        req.camera_info.header.stamp.sec = stamp_ns // 1_000_000_000
        req.camera_info.header.stamp.nanosec = stamp_ns % 1_000_000_000
        req.camera_info.header.frame_id = frame_id
        x, y, w, h = (int(round(v)) for v in box)
        req.camera_info.roi.x_offset, req.camera_info.roi.y_offset = x, y
        req.camera_info.roi.width, req.camera_info.roi.height = w, h
        return self.call(self.set_target_cli, req, timeout)

    def clear_target(self):
        from std_srvs.srv import Trigger

        return self.call(self.clear_target_cli, Trigger.Request())

    def set_params(self, **values):
        """Through the node's real parameter service (what `ros2 param set` does); returns the results."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        cli = self.client.create_client(SetParameters, f"{self.node.get_fully_qualified_name()}/set_parameters")
        try:
            req = SetParameters.Request()
            req.parameters = [Parameter(k.replace("__", "."), value=v).to_parameter_msg() for k, v in values.items()]
            return self.call(cli, req).results
        finally:
            self.client.destroy_client(cli)

    # ---- observations --------------------------------------------------------------------------------
    def dets_since(self, n: int) -> list:
        with self._lock:
            return list(self.detections[n:])

    def n_dets(self) -> int:
        with self._lock:
            return len(self.detections)

    def last_diag_values(self, since: int = 0) -> Optional[dict]:
        name = f"{self.node.get_fully_qualified_name()}: tracker"
        with self._lock:
            diags = list(self.diagnostics[since:])
        for msg in reversed(diags):
            for status in msg.status:
                if status.name == name:
                    values = {kv.key: kv.value for kv in status.values}
                    values["_level"] = status.level[0] if isinstance(status.level, bytes) else int(status.level)
                    values["_message"] = status.message
                    return values
        return None

    def n_diags(self) -> int:
        with self._lock:
            return len(self.diagnostics)

    def wait_diag(self, predicate, timeout: float = 10.0) -> Optional[dict]:
        """The first diagnostics status (published after now) that satisfies predicate."""
        start = self.n_diags()
        found = {}

        def check():
            values = self.last_diag_values(start)
            if values is not None and predicate(values):
                found.update(values)
                return True
            return False

        wait_for(check, timeout, 0.1)
        return found or self.last_diag_values(start)

    def close(self) -> None:
        self.stop_stream()
        try:
            self.node.teardown()
        finally:
            for ex, t in zip(self._executors, self._threads):
                try:
                    ex.shutdown(timeout_sec=5.0)
                finally:
                    t.join(5.0)
            self.node.destroy_node()
            self.client.destroy_node()


def make_context():
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id())
    return ctx


def shutdown_context(ctx) -> None:
    import rclpy

    rclpy.try_shutdown(context=ctx)


def wait_active(h, timeout: float = 30.0) -> None:
    assert wait_for(lambda: h.node.lifecycle_state == "active", timeout), h.node.lifecycle_state

