"""rosbag2 as a frame source and sink (`rosbags`): round trips of pixels, stamps and ground truth, MCAP and
sqlite3, raw and compressed images, the node's pairing rule, and `ckd track --bag` = `ckd track --sequence`."""
from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

import ckd_ros.tracking.cli as track_cli
from ckd_ros.cli import main
from ckd_ros.errors import CKDError
from ckd_ros.frames.pairing import ApproximatePairer, match_approximate
from ckd_ros.frames.rosbag import BagPairs, read_ground_truth, typestore, write_bag
from ckd_ros.runtime.base import Backend
from conftest import require_module

require_module("rosbags", "pip install rosbags")


def frames(n=6, size=(40, 56), thermal=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    top = 65535 if thermal == np.uint16 else 255
    return [(rng.integers(0, 256, (*size, 3), dtype=np.uint8), rng.integers(0, top + 1, size).astype(thermal))
            for _ in range(n)]


@pytest.mark.parametrize("thermal, encoding", [(np.uint16, "mono16"), (np.uint8, "mono8")])
def test_bag_round_trip_pixels_stamps_ground_truth(tmp_path, thermal, encoding):
    data = frames(thermal=thermal)
    boxes = [[1.5 + k, 2.25, 10.0, 12.5] for k in range(len(data))]
    boxes[3] = None  # an unannotated frame
    stamps = write_bag(tmp_path / "b", data, 7.0, boxes, start_ns=1_650_000_000_123_456_789)
    assert stamps == [1_650_000_000_123_456_789 + round(k * 1e9 / 7) for k in range(len(data))]
    assert (tmp_path / "b" / "b.mcap").is_file() and (tmp_path / "b" / "metadata.yaml").is_file()
    pairs = BagPairs(tmp_path / "b")
    got = list(pairs)
    assert len(got) == len(data) and pairs.fps == pytest.approx(7.0, rel=1e-6)
    for (rgb, tir, (rgb_ns, tir_ns)), (rgb0, tir0), ns in zip(got, data, stamps):
        assert rgb.dtype == np.uint8 and np.array_equal(rgb, rgb0)
        assert tir.dtype == thermal and np.array_equal(tir, tir0)
        assert rgb_ns == tir_ns == ns
    gt = read_ground_truth(tmp_path / "b")
    assert sorted(gt) == [s for s, b in zip(stamps, boxes) if b is not None]
    for s, b in zip(stamps, boxes):
        if b is not None:
            assert gt[s] == b
    # header fields as the node reads them
    from rosbags.rosbag2 import Reader

    store = typestore()
    with Reader(tmp_path / "b") as reader:
        seen = {}
        for conn, _, raw in reader.messages():
            msg = store.deserialize_cdr(raw, conn.msgtype)
            seen.setdefault(conn.topic, (conn.msgtype, msg))
    assert seen["/rgb/image"][1].encoding == "rgb8" and seen["/rgb/image"][1].header.frame_id == "camera_rgb"
    assert seen["/thermal/image"][1].encoding == encoding
    assert seen["/thermal/image"][1].header.frame_id == "camera_thermal"
    assert seen["/ground_truth"][0] == "vision_msgs/msg/Detection2DArray"
    with pytest.raises(CKDError, match="already exists"):
        write_bag(tmp_path / "b", data, 7.0)


def test_sqlite3_bags_and_compressed_images(tmp_path):
    """A bag as `ros2 bag record` writes it by default (sqlite3) with CompressedImage topics (png thermal)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    T = store.types
    data = frames(4, thermal=np.uint16, seed=2)
    with Writer(tmp_path / "c", version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conns = [writer.add_connection(t, "sensor_msgs/msg/CompressedImage", typestore=store)
                 for t in ("/cam/rgb/compressed", "/cam/ir/compressed")]
        for k, (rgb, tir) in enumerate(data):
            ns = 10**18 + k * 50_000_000
            for conn, img in zip(conns, (cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), tir)):
                ok, buf = cv2.imencode(".png", img)
                hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9,
                                                                                     nanosec=ns % 10**9), frame_id="f")
                msg = T["sensor_msgs/msg/CompressedImage"](header=hdr, format="png", data=buf.reshape(-1))
                writer.write(conn, ns + k, store.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))
    got = list(BagPairs(tmp_path / "c", "/cam/rgb/compressed", "/cam/ir/compressed"))
    assert len(got) == 4
    for (rgb, tir, _), (rgb0, tir0) in zip(got, data):
        assert np.array_equal(rgb, rgb0) and tir.dtype == np.uint16 and np.array_equal(tir, tir0)
    with pytest.raises(CKDError, match="has no topic /rgb/image; its topics: /cam/rgb/compressed"):
        BagPairs(tmp_path / "c")
    with pytest.raises(CKDError, match="does not exist"):
        BagPairs(tmp_path / "missing")


def test_pairing_rule_offsets_drops_and_loops():
    pairer = ApproximatePairer(slop_s=0.03, queue_size=3)
    ms = 1_000_000
    out = [pairer.add(0, 0, "r0"), pairer.add(1, 29 * ms, "t0"),  # 29 ms apart: paired
           pairer.add(0, 100 * ms, "r1"), pairer.add(1, 130 * ms, "t1"),  # exactly the slop: not paired
           pairer.add(0, 131 * ms, "r2")]  # pairs with t1 (1 ms), r1 waits
    assert out[0] is None and out[1] == ("r0", "t0", 0, 29 * ms) and out[2] is None and out[3] is None
    assert out[4] == ("r2", "t1", 131 * ms, 130 * ms)
    assert pairer.add(0, 50 * ms, "back") is None and pairer.resets == 1  # stamps went backwards: start over
    assert pairer.add(1, 50 * ms, "t") == ("back", "t", 50 * ms, 50 * ms)
    queues = ({1: "a", 5: "b"}, {4: "x"})
    assert match_approximate(queues, 1, 4, 3) == [5, 4]  # nearest first
    assert match_approximate(queues, 1, 4, 1) is None


@pytest.mark.ros
def test_pairing_rule_is_message_filters_rule():
    """Random stamps, drops and stream latencies through message_filters' own ApproximateTimeSynchronizer,
    the node's synchroniser (which calls `match_approximate`) and ApproximatePairer give the same pairs
    (stamps rise within each stream, as the node's stamp guard ensures)."""
    import message_filters
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from ckd_ros.node.input_sync import StampSynchronizer

    class Msg:
        def __init__(self, ns, tag):
            self.header = Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9))
            self.tag = tag

    rnd = random.Random(5)
    total = 0
    for trial in range(20):
        slop_s, queue = rnd.choice([0.005, 0.02, 0.03]), rnd.choice([1, 2, 5, 10])
        events = []
        for k in range(60):
            base = 10**9 + k * 33_000_000
            events.append((0, base + rnd.randint(-3, 3) * 4_000_000))
            if rnd.random() > 0.1:
                events.append((1, base + rnd.randint(-3, 3) * 5_000_000))
        latency = [rnd.randint(0, 80_000_000), rnd.randint(0, 80_000_000)]
        events.sort(key=lambda e: e[1] + latency[e[0]])  # arrival order: stamp + each stream's latency
        ours, theirs, node = [], [], []
        inputs = [message_filters.SimpleFilter(), message_filters.SimpleFilter()]
        for cls, out in ((message_filters.ApproximateTimeSynchronizer, theirs), (StampSynchronizer, node)):
            sync = cls(inputs, queue, slop_s)
            sync.registerCallback(lambda a, b, out=out: out.append((a.tag, b.tag)))
        pairer = ApproximatePairer(slop_s, queue)
        for i, (stream, ns) in enumerate(events):
            tag = f"{stream}:{ns}:{i}"
            inputs[stream].signalMessage(Msg(ns, tag))
            got = pairer.add(stream, ns, tag)
            if got is not None:
                ours.append(got[:2])
        assert ours == theirs == node, (trial, slop_s, queue)
        total += len(ours)
    assert total > 300  # most frames paired: the comparison has something to compare


class StillBackend(Backend):
    name = "still"

    def infer(self, z_rgb, z_tir, x_rgb, x_tir):
        # a peak that follows the brightest thermal cell: boxes depend on the frames
        tir = x_tir[0, 0].reshape(16, 16, 16, 16).mean(axis=(1, 3))
        score = np.exp(tir - tir.max()).astype(np.float32)[None, None]
        return {"score_map": score, "size_map": np.full((1, 2, 16, 16), 0.2, np.float32),
                "offset_map": np.zeros((1, 2, 16, 16), np.float32)}


def test_ckd_bag_write_and_track_bag_equal_track_sequence(tmp_path, monkeypatch, capsys):
    seq = tmp_path / "seqA"
    (seq / "visible").mkdir(parents=True)
    (seq / "infrared").mkdir()
    rows = []
    rng = np.random.default_rng(3)
    for i in range(7):
        x = 20 + 4 * i
        rgb = rng.integers(0, 80, (96, 128, 3), np.uint8)
        rgb[30:50, x:x + 24] = 220
        tir = rng.integers(7000, 7200, (96, 128)).astype(np.uint16)
        tir[30:50, x:x + 24] = 9000
        cv2.imwrite(str(seq / "visible" / f"{i}.png"), rgb)
        cv2.imwrite(str(seq / "infrared" / f"{i}.png"), tir)
        rows.append(f"{x},30,24,20")
    (seq / "init.txt").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(track_cli, "_open_backend", lambda args: StillBackend())
    bag = tmp_path / "seqA_bag"
    assert main(["bag", "write", str(bag), "--sequence", str(seq), "--fps", "20", "--start", "1700000000.5"]) == 0
    assert '"frames": 7' in capsys.readouterr().out
    assert main(["track", "--sequence", str(seq), "--out", str(tmp_path / "seq.txt"), "--quiet"]) == 0
    assert main(["track", "--bag", str(bag), "--out", str(tmp_path / "bag.txt"), "--quiet"]) == 0  # GT init
    seq_rows = np.loadtxt(tmp_path / "seq.txt")
    bag_lines = (tmp_path / "bag.txt").read_text().split("\n")
    assert bag_lines[0].startswith("1700000000.500000000 ") and bag_lines[1].startswith("1700000000.550000000 ")
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "bag.txt", usecols=(1, 2, 3, 4)), seq_rows)
    assert np.abs(seq_rows[-1] - seq_rows[0]).max() > 5  # the boxes follow the frames
    # --init-stamp starts later (frame 2, x = 20 + 2 * 4), initialised on that frame's ground truth
    assert main(["track", "--bag", str(bag), "--init-stamp", "1700000000.6", "--out", str(tmp_path / "late.txt"),
                 "--quiet"]) == 0
    late = (tmp_path / "late.txt").read_text().split("\n")
    assert late[0].split()[0] == "1700000000.600000000" and late[0].split()[1:] == ["28.0000", "30.0000",
                                                                                   "24.0000", "20.0000"]
    assert len([ln for ln in late if ln]) == 5
    capsys.readouterr()
    assert main(["track", "--bag", str(bag), "--rgb-topic", "/nope", "--out", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no topic /nope" in err


@pytest.mark.parametrize("rgb_enc, tir_enc", [("bgr8", "32FC1"), ("yuv422", "16UC1"), ("rgba8", "mono8")])
def test_bag_images_in_other_encodings_decode_like_the_node(tmp_path, rgb_enc, tir_enc):
    """Raw images in encodings cameras publish: the same arrays as the node's converter gives."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from ckd_ros.frames.ros_image import NumpyImageConverter, decode_rgb, decode_thermal

    store = typestore()
    T = store.types
    rng = np.random.default_rng(4)
    channels = {"bgr8": 3, "yuv422": 2, "rgba8": 4}[rgb_enc]
    dtype = {"32FC1": np.float32, "16UC1": np.uint16, "mono8": np.uint8}[tir_enc]
    msgs = []
    with Writer(tmp_path / "e", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = [writer.add_connection(t, "sensor_msgs/msg/Image", typestore=store)
                 for t in ("/rgb/image", "/thermal/image")]
        for k in range(3):
            ns = 2 * 10**18 + k * 10**8
            hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                           frame_id="f")
            rgb = rng.integers(0, 256, (24, 32, channels)).astype(np.uint8)
            tir = (rng.random((24, 32)) * 300).astype(dtype)
            for conn, arr, enc in zip(conns, (rgb, tir), (rgb_enc, tir_enc)):
                msg = T["sensor_msgs/msg/Image"](header=hdr, height=24, width=32, encoding=enc, is_bigendian=0,
                                                 step=arr.strides[0], data=arr.reshape(-1).view(np.uint8).copy())
                writer.write(conn, ns, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
                msgs.append(msg)
    got = list(BagPairs(tmp_path / "e"))
    assert len(got) == 3
    conv = NumpyImageConverter()
    for (rgb, tir, _), rgb_msg, tir_msg in zip(got, msgs[0::2], msgs[1::2]):
        assert rgb.shape == (24, 32, 3) and np.array_equal(rgb, decode_rgb(rgb_msg, conv))
        expected, _ = decode_thermal(tir_msg, conv)
        assert tir.dtype == dtype and np.array_equal(tir, expected)


def test_bag_write_from_image_folders_and_vtuav_ground_truth(tmp_path, capsys):
    seq = tmp_path / "bus"
    for sub in ("rgb", "ir"):
        (seq / sub).mkdir(parents=True)
    rng = np.random.default_rng(6)
    for i in range(12):
        cv2.imwrite(str(seq / "rgb" / f"{i:06d}.jpg"), rng.integers(0, 256, (36, 48, 3), np.uint8))
        cv2.imwrite(str(seq / "ir" / f"{i:06d}.jpg"), rng.integers(0, 256, (36, 48, 3), np.uint8))
    (seq / "rgb.txt").write_text("1 2 10 12\n3 4 10 12\n")  # VTUAV: one row every 10 frames
    assert main(["bag", "write", str(tmp_path / "v"), "--sequence", str(seq), "--fps", "10"]) == 0
    gt = read_ground_truth(tmp_path / "v")
    start = 1_700_000_000 * 10**9
    assert gt == {start: [1.0, 2.0, 10.0, 12.0], start + 10 * 10**8: [3.0, 4.0, 10.0, 12.0]}
    pairs = list(BagPairs(tmp_path / "v"))
    assert len(pairs) == 12 and pairs[0][1].ndim == 3  # colour thermal JPEGs stay rgb8 (a palette, as stored)
    (tmp_path / "gt.txt").write_text("5,6,7,8\n" * 3)
    assert main(["bag", "write", str(tmp_path / "f"), "--rgb", str(seq / "rgb"), "--thermal", str(seq / "ir"),
                 "--gt", str(tmp_path / "gt.txt"), "--frames", "3"]) == 0
    assert len(read_ground_truth(tmp_path / "f")) == 3 and len(list(BagPairs(tmp_path / "f"))) == 3
    capsys.readouterr()
    assert main(["bag", "write", str(tmp_path / "g"), "--sequence", str(seq), "--synthetic", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give one input" in err
