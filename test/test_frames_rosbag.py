"""rosbag2 as a frame source and sink (`rosbags`): round trips of pixels, stamps and ground truth, MCAP and
sqlite3, raw and compressed images, the node's synchroniser on bags, and `ckd track --bag` = `ckd track --sequence`."""
from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

import ckd_ros.tracking.cli as track_cli
from ckd_ros.cli import main
from ckd_ros.errors import CKDError
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


def _timed_bag(path, events):
    """A bag of mono8 8x8 images: events = [(topic, header stamp ns, recording time ns, tag)]; the tag is
    the image's first pixel (0..255) so pairs can be identified after decoding."""
    from rosbags.rosbag2 import Writer

    store = typestore()
    T = store.types
    with Writer(path, version=8) as writer:
        conns = {t: writer.add_connection(t, "sensor_msgs/msg/Image", typestore=store)
                 for t in ("/rgb/image", "/thermal/image")}
        for topic, stamp, record, tag in sorted(events, key=lambda e: e[2]):
            hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp // 10**9,
                                                                                 nanosec=stamp % 10**9), frame_id="f")
            data = np.full(64, tag, dtype=np.uint8)
            msg = T["sensor_msgs/msg/Image"](header=hdr, height=8, width=8, encoding="mono8", is_bigendian=0,
                                             step=8, data=data)
            writer.write(conns[topic], record, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def _tags(pairs):
    return [(int(rgb[0, 0, 0]), int(tir[0, 0])) for rgb, tir, _ in pairs]


def test_bag_pairing_is_the_node_synchroniser(tmp_path):
    """Bags pair with the node's own TimeSync, the recording time standing in for arrival time: a thermal
    core recorded 0.4 s late pairs every frame with the defaults (the node's sync.max_delay 0.5 s), a
    too-short max_delay drops them, a constant stamp offset needs sync.thermal_offset, jitter below the
    slop pairs nearest-first, and the pairs equal TimeSync fed the same messages directly."""
    from ckd_ros.frames.pairing import TimeSync

    ms, t0 = 1_000_000, 1_700_000_000 * 10**9
    rnd = random.Random(3)
    late, offset, jitter = [], [], []
    for k in range(30):
        ns = t0 + k * 100 * ms
        late += [("/rgb/image", ns, ns + 5 * ms, k), ("/thermal/image", ns + 2 * ms, ns + 400 * ms, k)]
        offset += [("/rgb/image", ns, ns, k), ("/thermal/image", ns + 250 * ms, ns + 1 * ms, k)]
        jitter += [("/rgb/image", ns, ns + rnd.randint(0, 30) * ms, k),
                   ("/thermal/image", ns + rnd.randint(-12, 12) * ms, ns + rnd.randint(0, 60) * ms, k)]
    for name, events in (("late", late), ("offset", offset), ("jitter", jitter)):
        _timed_bag(tmp_path / name, events)
    want = [(k, k) for k in range(30)]
    assert _tags(BagPairs(tmp_path / "late")) == want
    assert len(list(BagPairs(tmp_path / "late", max_delay_s=0.1))) < 3  # queue too short: partners expire
    assert list(BagPairs(tmp_path / "offset")) == []  # 250 ms offset: 50 ms from any RGB stamp, beyond the slop
    assert _tags(BagPairs(tmp_path / "offset", thermal_offset_s=-0.25)) == want
    got = _tags(BagPairs(tmp_path / "jitter"))
    assert got == want
    # the same messages straight into TimeSync (the node's object) give the same pairs
    now = [0.0]
    direct = []
    sync = TimeSync(0.03, 0.5, direct.append, clock=lambda: now[0])
    for topic, stamp, record, tag in sorted(jitter, key=lambda e: e[2]):
        now[0] = record / 1e9
        sync.add("rgb" if topic == "/rgb/image" else "thermal", tag, stamp)
    assert [(p.rgb, p.thermal) for p in direct] == got
    with pytest.raises(CKDError, match="slop > 0"):
        BagPairs(tmp_path / "late", slop_s=0.0)


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
