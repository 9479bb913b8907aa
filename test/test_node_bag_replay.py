"""Offline = online: a bag recorded by `ckd bag write` is played into the real node (real rclpy, a small
player publishing the bag's own CDR messages with their stamps, one pair after the node has answered the
previous one), and the node's per-frame boxes equal `ckd track --bag` on the same bag within 1e-3 px for
every frame the node processed. The demo model (engines/demo_small.onnx) runs in ONNX Runtime, 1 thread,
on both sides.
"""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
from test_node_support import Harness, make_context, shutdown_context, wait_for

from ckd_ros.cli import main
from conftest import require_module

pytestmark = pytest.mark.ros
require_module("rosbags", "pip install rosbags")

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO_ONNX = REPO / "engines" / "demo_small.onnx"
FRAMES = 24


def read_stamped_rows(path: pathlib.Path) -> dict:
    """{stamp ns: (x, y, w, h)} from a `ckd track --bag` result file ('sec.nanosec x y w h' rows)."""
    rows = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        stamp, *box = line.split()
        sec, nsec = stamp.split(".")
        rows[int(sec) * 10**9 + int(nsec)] = np.array([float(v) for v in box])
    return rows


def demo_backend(_values):
    from ckd_ros.runtime import open_backend

    return open_backend("onnxruntime", onnx=str(DEMO_ONNX), device="cpu", threads=1)


def bag_messages(bag: pathlib.Path, topics):
    """(topic, raw CDR bytes, header stamp ns) in the bag's log order, read with rosbags."""
    from rosbags.rosbag2 import Reader

    from ckd_ros.frames.pairing import stamp_ns
    from ckd_ros.frames.rosbag import typestore

    store = typestore()
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic in topics]
        for conn, _, raw in reader.messages(connections=conns):
            yield conn.topic, bytes(raw), stamp_ns(store.deserialize_cdr(raw, conn.msgtype))


@pytest.fixture(scope="module")
def ctx():
    context = make_context()
    yield context
    shutdown_context(context)


def test_node_boxes_equal_ckd_track_on_the_same_bag(ctx, tmp_path, capsys):
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from ckd_ros.frames.rosbag import read_ground_truth
    from ckd_ros.node.detections import detection_box

    bag = tmp_path / "scene.bag"
    assert main(["bag", "write", str(bag), "--synthetic", "11", "--frames", str(FRAMES), "--size", "320x256",
                 "--fps", "10"]) == 0
    gt = read_ground_truth(bag)
    first = min(gt)
    init = [int(round(v)) for v in gt[first]]  # set_target carries integer pixels (sensor_msgs RegionOfInterest)

    out = tmp_path / "offline.txt"
    assert main(["track", "--bag", str(bag), "--onnx", str(DEMO_ONNX), "--backend", "onnxruntime", "--device", "cpu",
                 "--threads", "1", "--thermal-norm", "minmax", "--init", ",".join(map(str, init)),
                 "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    offline = read_stamped_rows(out)
    assert len(offline) == FRAMES and min(offline) == first

    h = Harness(ctx, overrides={"tracking.lost_threshold": 0.0, "thermal.normalization": "minmax",
                                "qos.reliability": "reliable"},
                backend_factory=demo_backend, namespace="/bag_replay", pub_reliability="reliable")
    try:
        assert wait_for(lambda: h.node.lifecycle_state == "active", 60.0), h.node.lifecycle_state
        pubs = {"/rgb/image": h.rgb_pub, "/thermal/image": h.tir_pub}
        frames = {}
        for topic, raw, stamp in bag_messages(bag, pubs):
            frames.setdefault(stamp, []).append((topic, raw))
        node_boxes = {}

        def collect():
            for d in h.dets_since(0):
                s = d.header.stamp.sec * 10**9 + d.header.stamp.nanosec
                if d.detections:
                    node_boxes[s] = np.array(detection_box(d.detections[0]))

        for k, stamp in enumerate(sorted(frames)):
            for topic, raw in frames[stamp]:
                pubs[topic].publish(deserialize_message(raw, Image))
            if k == 0:  # set the target on the first frame, by its stamp, once the node has paired it
                assert wait_for(lambda: h.node.cache.newest() is not None, 20.0), "frame 0 never reached the node"
                res = h.set_target(init, stamp_ns=stamp)
                assert res.success, res.status_message
            wait_for(lambda s=stamp: (collect() or True) and s in node_boxes, 20.0)
        collect()
    finally:
        h.close()

    processed = sorted(node_boxes)
    assert len(processed) >= FRAMES - 2, f"the node processed only {len(processed)} of {FRAMES} frames"
    assert processed[0] == first
    for stamp in processed:
        np.testing.assert_allclose(node_boxes[stamp], offline[stamp], atol=1e-3, rtol=0,
                                   err_msg=f"frame at {stamp} differs between the node and ckd track --bag")
    moved = np.abs(offline[processed[-1]] - offline[first]).max()
    assert moved > 5.0, "the target should move: a test that cannot fail otherwise"
