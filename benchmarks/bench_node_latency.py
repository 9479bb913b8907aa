#!/usr/bin/env python3
"""End-to-end latency of the ckd_tracker node: camera stamp -> detection received, and the same minus
the network (backend inference) time, p50/p99, per frame.

Two processes, like a robot: a camera process publishes RGB (rgb8) + thermal (mono16) pairs stamped
with the wall clock and receives the detections; this process runs the real node (the executor main() picks,
worker thread, sync, cache, diagnostics) and records each processed pair's stage timings. Frames are
joined by stamp afterwards.

    CKD_ROS_DISTRO=jazzy bash -c '. scripts/ros_env.sh && .venv/bin/python benchmarks/bench_node_latency.py \
        --width 640 --height 512 --rate 30 --seconds 30 --backend onnxruntime --preset demo_small'

Random weights (the box values do not matter for latency); `--checkpoint` or `--onnx` uses a real model
instead, e.g. the shipped INT8 demo model: `--onnx engines/demo_small_int8.onnx --precision int8`.
`--null-network` returns fixed maps that hold the box in place instead of running the network:
what is left is the node's own cost. `node_cpu_ms_per_pair` (CPU time of the whole node process over the
measured window, per received pair) does not depend on how busy the machine is, unlike the
wall-clock stages.

`--echo` measures the floor under all of this: the same camera process and a do-nothing rclpy node
(same executor) that answers every thermal image with an empty detection. Its e2e is what two Python
processes exchanging these images over DDS cost on this machine before the tracker does anything;
the node's own overhead is its e2e_minus_network minus this floor.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- camera process ----------------------------------------------------------------------------

def camera(args) -> int:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    sys.path.insert(0, os.path.join(HERE, "..", "test"))
    from test_node_support import MovingTarget

    from ckd_ros.frames.pairing import stamp_ns
    from ckd_ros.frames.ros_image import array_to_image_msg

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    rgb_pub = node.create_publisher(Image, "/rgb/image", qos_profile_sensor_data)
    tir_pub = node.create_publisher(Image, "/thermal/image", qos_profile_sensor_data)
    received = {}
    node.create_subscription(Detection2DArray, "/ckd_tracker/detections",
                             lambda m: received.setdefault(stamp_ns(m), time.time_ns()), 100)
    scene = MovingTarget(args.width, args.height, box_size=(args.width // 8, args.height // 8),
                         speed=args.width / 200)
    # Pre-rendered and pre-converted, stamped just before publishing: like a camera driver that stamps
    # the exposure and hands the buffer over, so the figures are the node's and the transport's, not
    # this Python camera's numpy -> message conversion (1.6 MB per pair).
    frames = []
    for k in range(60):
        rgb, tir = scene.frame(k)
        frames.append((array_to_image_msg(rgb, "rgb8", stamp_ns=0, frame_id="cam_rgb"),
                       array_to_image_msg(tir, "mono16", stamp_ns=0, frame_id="cam_tir")))
    executor, _ = bench_executor("auto")  # the lightest receive path rclpy has: measure, do not add
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    published = []
    t0 = time.monotonic()
    k = 0
    while time.monotonic() - t0 < args.seconds + args.warmup:
        rgb_msg, tir_msg = frames[k % len(frames)]
        stamp = time.time_ns()
        for msg in (rgb_msg, tir_msg):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
        rgb_pub.publish(rgb_msg)
        tir_pub.publish(tir_msg)
        published.append((stamp, k % len(frames)))
        k += 1
        time.sleep(max(0.0, t0 + k / args.rate - time.monotonic()))
    time.sleep(1.0)
    executor.shutdown()  # no detection arrives while the record is written
    spin.join(5.0)
    with open(args.out, "w") as f:
        json.dump({"published": published, "received": received}, f)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# ---- node process ----------------------------------------------------------------------------------

def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


def start_camera(args):
    """The camera process (this file, --role camera) and the JSON file it writes when done."""
    out = os.path.join(tempfile.mkdtemp(), "camera.json")
    cam = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "camera", "--out", out,
                            "--width", str(args.width), "--height", str(args.height), "--rate", str(args.rate),
                            "--seconds", str(args.seconds), "--warmup", str(args.warmup)])
    return cam, out


def stop_and_read(executor, spin, node, out: str, warmup_s: float):
    """Shut the node process's ROS side down, read the camera's record: ({stamp: received ns}, first
    stamp counted after the warm-up)."""
    import rclpy

    executor.shutdown()
    spin.join(5.0)
    node.destroy_node()
    rclpy.try_shutdown()
    with open(out) as f:
        cam_data = json.load(f)
    received = {int(k): v for k, v in cam_data["received"].items()}
    return received, cam_data["published"][0][0] + int(warmup_s * 1e9)


def describe_run(args) -> dict:
    """The first keys of every summary: where and what was measured."""
    return {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                       f"{platform.python_version()}",
            "ros_distro": os.environ.get("ROS_DISTRO", "?"), "rmw": os.environ.get("RMW_IMPLEMENTATION", "?"),
            "executor": args.executor_name, "image": f"{args.width}x{args.height} rgb8 + mono16",
            "camera_rate_hz": args.rate}


def bench_executor(kind: str):
    """(executor, name): what `ckd_tracker`'s main() picks for its parameter `executor` = kind."""
    try:
        from ckd_ros.node.tracker_node import make_executor
    except ImportError:  # a ckd_ros from before the `executor` parameter (A/B runs against old code)
        from rclpy.executors import MultiThreadedExecutor

        print(f"this ckd_ros has no executor parameter: executor {kind} ignored, MultiThreadedExecutor")
        return MultiThreadedExecutor(num_threads=4), "multi_threaded (ckd_ros without make_executor)"
    return make_executor(kind)


def make_executor(args):
    """The node side's executor for `--executor`; its name goes into the summary."""
    executor, args.executor_name = bench_executor(args.executor)
    return executor


def echo(args) -> int:
    """The floor: a do-nothing node on the same executor answers each thermal image at once."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    rclpy.init()
    node = rclpy.create_node("bench_echo")
    pub = node.create_publisher(Detection2DArray, "/ckd_tracker/detections", 10)

    answered = []

    def answer(msg):
        pub.publish(Detection2DArray(header=msg.header))
        answered.append(1)

    node.create_subscription(Image, "/rgb/image", lambda msg: None, qos_profile_sensor_data)
    node.create_subscription(Image, "/thermal/image", answer, qos_profile_sensor_data)
    executor = make_executor(args)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    cam, out = start_camera(args)
    time.sleep(args.warmup)
    cpu0, n0 = time.process_time(), len(answered)
    cam.wait()
    cpu_per_pair = (time.process_time() - cpu0) * 1e3 / max(len(answered) - n0, 1)
    received, t_first = stop_and_read(executor, spin, node, out, args.warmup)
    e2e = [(v - k) / 1e6 for k, v in received.items() if k >= t_first]
    if not e2e:
        print("no echoes received", file=sys.stderr)
        return 1
    result = {**describe_run(args), "echo_floor_ms": {"p50": pct(e2e, 50), "p99": pct(e2e, 99)},
              "frames_measured": len(e2e), "node_cpu_ms_per_pair": cpu_per_pair}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def run(args) -> int:
    import rclpy
    from rclpy.parameter import Parameter

    from ckd_ros.node.tracker_node import CkdTrackerNode

    class NullNetwork:
        """The real backend for the template; every search returns maps that keep the box where it is.

        Replaying one real inference's maps (random weights) would move and rescale the box every frame
        until it spans the frame, and the crop cost would grow with it; these maps decode to the
        previous box (peak in the centre cell, zero offset, the size of the target the bench selects),
        so the crops cost what they cost while tracking the target."""

        def __init__(self, inner) -> None:
            self._inner, self._maps = inner, None
            self.name, self.config = f"{inner.name}+null", getattr(inner, "config", None)

        def set_template(self, z_rgb, z_tir):
            self._inner.set_template(z_rgb, z_tir)

        def infer_search(self, x_rgb, x_tir):
            if self._maps is None:
                from ckd_ros.tracking.preprocess import crop_window
                from ckd_ros.tracking.tracker import TrackerParams

                real = self._inner.infer_search(x_rgb, x_tir)
                feat = real["score_map"].shape[-1]
                w, h = args.width // 8, args.height // 8
                crop_sz = crop_window((0, 0, w, h), TrackerParams().search_factor)[2]
                score = np.zeros_like(real["score_map"])
                score[..., feat // 2, feat // 2] = 1.0
                size = np.empty_like(real["size_map"])
                size[:, 0], size[:, 1] = w / crop_sz, h / crop_sz
                self._maps = {**real, "score_map": score, "size_map": size,
                              "offset_map": np.full_like(real["offset_map"], 0.5 * (feat % 2))}
            return self._maps

        def describe(self):
            return f"{self._inner.describe()} (null network: maps that hold the box)"

        def close(self):
            self._inner.close()

    def factory(values):
        backend = open_any(values)
        return NullNetwork(backend) if args.null_network else backend

    def open_any(values):
        from ckd_ros.runtime import open_backend

        if args.checkpoint or args.onnx:
            return open_backend(args.backend, checkpoint=args.checkpoint, onnx=args.onnx, preset=args.preset,
                                precision=args.precision, cache_dir=args.cache_dir, threads=args.threads)
        import torch

        from ckd_ros.model import CKDConfig, CKDStudent

        torch.manual_seed(0)
        model = CKDStudent(CKDConfig.preset(args.preset)).eval()
        extra = {"threads": args.threads} if args.backend == "onnxruntime" else {}
        return open_backend(args.backend, model=model, cache_dir=args.cache_dir, **extra)

    rclpy.init()
    overrides = [Parameter("tracking.lost_threshold", value=0.0), Parameter("debug.overlay", value=False),
                 Parameter("tracking.init_cache_s", value=1.0)]
    node = CkdTrackerNode(backend_factory=factory, parameter_overrides=overrides)
    timings = {}
    original = node._publish_outcome

    def record(outcome):
        original(outcome)
        if outcome.live:
            timings[outcome.decoded.pair.rgb_stamp_ns] = dict(outcome.timings)

    node._publish_outcome = record
    executor = make_executor(args)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    deadline = time.monotonic() + 300
    while node.lifecycle_state != "active":
        if time.monotonic() > deadline:
            print("node did not become active", file=sys.stderr)
            return 1
        time.sleep(0.1)
    backend_desc = node._backend.describe()
    print(f"node active: {backend_desc}")

    cam, out = start_camera(args)
    from sensor_msgs.srv import SetCameraInfo

    # target: the rectangle of the first pre-rendered frame (its position does not change the latency)
    client = node.create_client(SetCameraInfo, "/ckd_tracker/set_target")
    deadline = time.monotonic() + 60.0
    while len(node.cache) < 3 and time.monotonic() < deadline:  # the camera process may start slowly
        time.sleep(0.1)
    req = SetCameraInfo.Request()
    w, h = args.width // 8, args.height // 8
    req.camera_info.roi.x_offset, req.camera_info.roi.y_offset = args.width // 2, args.height // 2
    req.camera_info.roi.width, req.camera_info.roi.height = w, h
    res = client.call(req) if client.wait_for_service(timeout_sec=10) else None
    print(f"set_target: {res.success if res else None} {res.status_message if res else ''}")
    time.sleep(args.warmup)
    cpu0, pairs0 = time.process_time(), node.stats.snapshot()["counters"].get("pairs_received", 0)
    cam.wait()
    cpu1, snap = time.process_time(), node.stats.snapshot()
    node.teardown()
    received, t_first = stop_and_read(executor, spin, node, out, args.warmup)
    rows = []
    for stamp, t_recv in received.items():
        if stamp < t_first or stamp not in timings:
            continue
        tm = timings[stamp]
        e2e = (t_recv - stamp) / 1e6
        network = tm.get("inference", 0.0)
        rows.append({**tm, "e2e": e2e, "inference": network, "e2e_minus_network": e2e - network})
    if not rows:
        print("no detections matched", file=sys.stderr)
        return 1
    counters = snap["counters"]
    keys = ["e2e", "inference", "e2e_minus_network", "stamp_to_publish", "total", "sync_wait", "queue", "decode",
            "preprocess", "postprocess", "publish"]
    result = {
        **describe_run(args),
        "backend": backend_desc,
        "frames_measured": len(rows),
        "processed_fps": len(rows) / args.seconds,
        "pairs_received": counters.get("pairs_received", 0),
        "node_cpu_ms_per_pair": (cpu1 - cpu0) * 1e3 / max(counters.get("pairs_received", 0) - pairs0, 1),
        "pairs_processed": counters.get("pairs_processed", 0),
        "pairs_dropped": {k[len("dropped."):]: v for k, v in counters.items() if k.startswith("dropped.")},
        "ms": {k: {"p50": pct([r[k] for r in rows if k in r], 50), "p99": pct([r[k] for r in rows if k in r], 99)}
               for k in keys},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=("node", "camera"), default="node")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--rate", type=float, default=30.0, help="camera rate (Hz)")
    p.add_argument("--seconds", type=float, default=30.0, help="measured duration")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds ignored at the start")
    p.add_argument("--backend", default="onnxruntime", choices=("torch", "onnxruntime", "tensorrt", "auto"))
    p.add_argument("--preset", default="demo_small")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--onnx", default=None, help="a `ckd export` / `ckd quantize` ONNX file instead of random weights")
    p.add_argument("--precision", default="fp32", help="fp32 | fp16 | int8 (int8: a QDQ file from ckd quantize)")
    p.add_argument("--null-network", action="store_true",
                   help="fixed maps that hold the box instead of the network: the node's own cost")
    p.add_argument("--echo", action="store_true",
                   help="a do-nothing node instead of ckd_tracker: the transport floor")
    p.add_argument("--executor", default="auto", choices=("auto", "events", "multi_threaded"),
                   help="the node's executor (its parameter `executor`); the echo node uses the same")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="write the summary here")
    args = p.parse_args(argv)
    if args.role == "camera":
        return camera(args)
    return echo(args) if args.echo else run(args)


if __name__ == "__main__":
    sys.exit(main())
