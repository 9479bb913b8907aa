"""rosbag2 files (sqlite3 and MCAP) as a frame source and a sink, through the `rosbags` library.

`BagPairs` reads an RGB and a thermal topic (sensor_msgs/Image or CompressedImage), pairs them by
header stamp with the node's own synchroniser (`frames.pairing.TimeSync`, the node's `sync.slop`,
`sync.max_delay` and `sync.thermal_offset`, the recording time standing in for arrival time) and
converts with the node's own code (`frames.ros_image`: every encoding the node
accepts). `write_bag` records any frame sequence as MCAP: sensor_msgs/Image `rgb8` RGB, `mono8` /
`mono16` thermal (as stored), header stamps at the sequence's frame rate, frame ids, and the ground
truth as vision_msgs/Detection2DArray (the node's detection layout) on a third topic.

`rosbags` (pure Python, no ROS installation) is imported only when a bag is opened; vision_msgs is
registered in its type store from the ROS message definitions below.
"""
from __future__ import annotations

import pathlib
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ckd_ros.errors import DependencyError, FrameError, InputError, ParameterError
from ckd_ros.frames.pairing import stamp_ns

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
DETECTIONS = "vision_msgs/msg/Detection2DArray"

# vision_msgs 4.x (Humble, Jazzy), comments stripped: the layout the node publishes
VISION_MSGS = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": "vision_msgs/ObjectHypothesis hypothesis\n"
                                                "geometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/Detection2D": "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
                                   "vision_msgs/BoundingBox2D bbox\nstring id\n",
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
}


def _rosbags():
    try:
        import rosbags.rosbag2 as rosbag2
        import rosbags.typesys as typesys
    except ImportError as exc:
        raise DependencyError(f"reading/writing rosbag2 files needs the rosbags package ({exc}); "
                              "pip install rosbags") from None
    return rosbag2, typesys


def typestore():
    """A rosbags type store (ROS 2 Humble message set; sensor_msgs is the same in Jazzy) with vision_msgs."""
    _, typesys = _rosbags()
    store = typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)
    types = {}
    for name, text in VISION_MSGS.items():
        types.update(typesys.get_types_from_msg(text, name))
    store.register(types)
    return store


def _open_reader(path):
    rosbag2, _ = _rosbags()
    path = pathlib.Path(path)
    if not path.exists():
        raise InputError(f"bag {path} does not exist (give a rosbag2 folder, or its .mcap/.db3 file)")
    try:
        reader = rosbag2.Reader(path)
        reader.open()
    except Exception as exc:  # ReaderError, sqlite/mcap errors of damaged files
        raise InputError(f"cannot open bag {path} ({exc}); give a rosbag2 folder (metadata.yaml with its "
                         ".db3/.mcap files) or a .mcap/.db3 file") from None
    return reader


def _connection(reader, topic: str, types: Sequence[str], path):
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        have = ", ".join(f"{c.topic} ({c.msgtype})" for c in reader.connections) or "none"
        raise InputError(f"bag {path} has no topic {topic}; its topics: {have}")
    if conns[0].msgtype not in types:
        raise InputError(f"bag {path}: topic {topic} is {conns[0].msgtype}, expected {' or '.join(types)}")
    return conns


class BagPairs:
    """Synchronised (rgb HxWx3 uint8 RGB, thermal as stored, (rgb_stamp_ns, thermal_stamp_ns)) pairs of
    a rosbag2 file, in the order the node would pair them if the bag were played into it.

    Thermal comes back as the node decodes it: HxW uint8/uint16/float32 raw values, or HxWx3 RGB for
    palette encodings (converted to gray by `ThermalNormalizer`). `start_ns`: skip pairs whose RGB stamp
    is earlier. `rgb_count`: RGB messages (an upper bound of the pairs); `fps`: RGB messages per second
    of recording. Unreadable images raise `FrameError` naming the stamp.
    """

    def __init__(self, path, rgb_topic: str = "/rgb/image", thermal_topic: str = "/thermal/image",
                 slop_s: float = 0.03, max_delay_s: float = 0.5, start_ns: Optional[int] = None,
                 thermal_offset_s: float = 0.0) -> None:
        if not (slop_s > 0 and max_delay_s > 0):
            raise ParameterError(f"bag pairing needs slop > 0 and max_delay > 0 s (got {slop_s}, {max_delay_s}); "
                                 "use the node's sync.slop / sync.max_delay values")
        self.path = pathlib.Path(path)
        self.rgb_topic, self.thermal_topic = rgb_topic, thermal_topic
        self.slop_s, self.max_delay_s, self.start_ns = slop_s, max_delay_s, start_ns
        self.thermal_offset_s = thermal_offset_s
        reader = _open_reader(self.path)
        try:
            rgb = _connection(reader, rgb_topic, (IMAGE, COMPRESSED), self.path)
            _connection(reader, thermal_topic, (IMAGE, COMPRESSED), self.path)
            self.rgb_count = sum(c.msgcount for c in rgb)
            duration_s = reader.duration / 1e9
        finally:
            reader.close()
        self.fps = (self.rgb_count - 1) / duration_s if self.rgb_count > 1 and duration_s > 0 else 30.0
        self.first_stamp_ns: Optional[int] = None  # RGB stamp of the first pair, once read

    def __len__(self) -> int:
        return self.rgb_count

    def __iter__(self) -> Iterator[Tuple[np.ndarray, np.ndarray, Tuple[int, int]]]:
        from ckd_ros.frames.pairing import TimeSync
        from ckd_ros.frames.ros_image import (
            ImageConversionError,
            NumpyImageConverter,
            decode_rgb,
            decode_rgb_compressed,
            decode_thermal,
            decode_thermal_compressed,
        )

        store = typestore()
        ready: List = []
        record_s = [0.0]  # the bag's recording time plays the node's arrival clock
        pairer = TimeSync(self.slop_s, self.max_delay_s, ready.append, thermal_offset_s=self.thermal_offset_s,
                          clock=lambda: record_s[0])
        converter = NumpyImageConverter()
        reader = _open_reader(self.path)
        try:
            conns = [c for c in reader.connections if c.topic in (self.rgb_topic, self.thermal_topic)]
            for conn, record_ns, raw in reader.messages(connections=conns):
                msg = store.deserialize_cdr(raw, conn.msgtype)
                stream = "rgb" if conn.topic == self.rgb_topic else "thermal"
                record_s[0] = record_ns / 1e9
                pairer.add(stream, (msg, conn.msgtype), stamp_ns(msg))
                while ready:
                    pair = ready.pop(0)
                    (rgb_msg, rgb_type), (tir_msg, tir_type) = pair.rgb, pair.thermal
                    rgb_ns, tir_ns = pair.rgb_stamp_ns, pair.thermal_stamp_ns
                    if self.start_ns is not None and rgb_ns < self.start_ns:
                        continue
                    try:
                        rgb = (decode_rgb_compressed(rgb_msg) if rgb_type == COMPRESSED
                               else decode_rgb(rgb_msg, converter))
                        tir, _ = (decode_thermal_compressed(tir_msg) if tir_type == COMPRESSED
                                  else decode_thermal(tir_msg, converter))
                    except ImageConversionError as exc:
                        raise FrameError(f"bag {self.path}, pair at {rgb_ns / 1e9:.9f} s: {exc}") from None
                    if self.first_stamp_ns is None:
                        self.first_stamp_ns = rgb_ns
                    yield rgb, tir, (rgb_ns, tir_ns)
        finally:
            reader.close()

    def first_pair_stamp(self) -> Optional[int]:
        """RGB stamp of the first pair that `__iter__` yields (reads until it)."""
        if self.first_stamp_ns is None:
            for _ in self:
                break
        return self.first_stamp_ns

    def ground_truth_box(self, gt_topic: str = "/ground_truth") -> Optional[List[float]]:
        """The ground-truth box (x, y, w, h) at the first pair's RGB stamp, None without one."""
        stamp = self.first_pair_stamp()
        if stamp is None:
            return None
        return read_ground_truth(self.path, gt_topic).get(stamp)


def read_ground_truth(path, gt_topic: str = "/ground_truth") -> Dict[int, List[float]]:
    """{header stamp ns: [x, y, w, h]} of the first detection of each Detection2DArray on `gt_topic`
    (empty when the bag has no such topic)."""
    store = typestore()
    reader = _open_reader(path)
    out: Dict[int, List[float]] = {}
    try:
        conns = [c for c in reader.connections if c.topic == gt_topic]
        if conns and conns[0].msgtype != DETECTIONS:
            raise InputError(f"bag {path}: topic {gt_topic} is {conns[0].msgtype}, expected {DETECTIONS}")
        for conn, _, raw in (reader.messages(connections=conns) if conns else ()):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            if msg.detections:
                det = msg.detections[0]
                cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
                w, h = det.bbox.size_x, det.bbox.size_y
                out[stamp_ns(msg)] = [cx - w / 2.0, cy - h / 2.0, w, h]
    finally:
        reader.close()
    return out


def _thermal_encoding(tir: np.ndarray) -> Tuple[np.ndarray, str]:
    if tir.ndim == 3 and tir.shape[2] == 1:
        tir = tir[:, :, 0]
    if tir.ndim == 3 and tir.dtype == np.uint8 and (tir == tir[:, :, :1]).all():
        tir = tir[:, :, 0]  # gray stored as 3 equal channels (8-bit thermal JPEGs)
    if tir.ndim == 2 and tir.dtype == np.uint8:
        return tir, "mono8"
    if tir.ndim == 2 and tir.dtype == np.uint16:
        return tir, "mono16"
    if tir.ndim == 2 and tir.dtype == np.float32:
        return tir, "32FC1"
    if tir.ndim == 3 and tir.shape[2] == 3 and tir.dtype == np.uint8:
        return tir, "rgb8"  # a colour palette, as stored
    raise FrameError(f"thermal frame {tir.dtype} {tir.shape} has no sensor_msgs encoding "
                     "(uint8/uint16 HxW, float32 HxW or uint8 HxWx3)")


def write_bag(path, frames: Iterable[Tuple[np.ndarray, np.ndarray]], fps: float,
              boxes: Optional[Sequence[Optional[Sequence[float]]]] = None, *,
              rgb_topic: str = "/rgb/image", thermal_topic: str = "/thermal/image", gt_topic: str = "/ground_truth",
              rgb_frame_id: str = "camera_rgb", thermal_frame_id: str = "camera_thermal",
              start_ns: int = 1_700_000_000 * 10**9, label: str = "target") -> List[int]:
    """Record (rgb HxWx3 uint8 RGB, thermal) frames as an MCAP rosbag2 folder `path`; returns the stamps.

    Frame k gets header stamp `start_ns + round(k * 1e9 / fps)` on both images (and as the bag's log
    time); `boxes[k]` (x, y, w, h, RGB pixels; None = no annotation) becomes a Detection2DArray on
    `gt_topic` with that stamp and the RGB frame id. Refuses to overwrite an existing `path`.
    """
    rosbag2, _ = _rosbags()
    path = pathlib.Path(path)
    if path.exists():
        raise InputError(f"{path} already exists; give a new bag folder name (rosbag2 writes a folder)")
    if not fps > 0:
        raise InputError(f"frame rate must be > 0, got {fps}")
    store = typestore()
    T = store.types
    Time, Header = T["builtin_interfaces/msg/Time"], T["std_msgs/msg/Header"]
    Image = T[IMAGE]

    def header(ns: int, frame_id: str):
        return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame_id)

    def image(arr: np.ndarray, encoding: str, ns: int, frame_id: str):
        arr = np.ascontiguousarray(arr)
        return Image(header=header(ns, frame_id), height=arr.shape[0], width=arr.shape[1], encoding=encoding,
                     is_bigendian=0, step=arr.strides[0], data=arr.reshape(-1).view(np.uint8).copy())

    stamps: List[int] = []
    writer = rosbag2.Writer(path, version=9, storage_plugin=rosbag2.StoragePlugin.MCAP)
    writer.open()
    try:
        c_rgb = writer.add_connection(rgb_topic, IMAGE, typestore=store)
        c_tir = writer.add_connection(thermal_topic, IMAGE, typestore=store)
        c_gt = writer.add_connection(gt_topic, DETECTIONS, typestore=store) if boxes is not None else None
        for k, (rgb, tir) in enumerate(frames):
            ns = start_ns + int(round(k * 1e9 / fps))
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise FrameError(f"frame {k}: RGB must be HxWx3 uint8, got {rgb.dtype} {rgb.shape}")
            tir, enc = _thermal_encoding(np.asarray(tir))
            writer.write(c_rgb, ns, store.serialize_cdr(image(rgb, "rgb8", ns, rgb_frame_id), IMAGE))
            writer.write(c_tir, ns, store.serialize_cdr(image(tir, enc, ns, thermal_frame_id), IMAGE))
            box = boxes[k] if boxes is not None and k < len(boxes) else None
            if c_gt is not None:
                msg = _detections(T, header(ns, rgb_frame_id), box, label)
                writer.write(c_gt, ns, store.serialize_cdr(msg, DETECTIONS))
            stamps.append(ns)
    finally:
        writer.close()
    return stamps


def _detections(T, header, box, label: str):
    """A Detection2DArray as the node builds it (node/detections.py): one detection, centre + size."""
    dets = []
    if box is not None and all(np.isfinite(v) for v in box) and box[2] > 0 and box[3] > 0:
        x, y, w, h = (float(v) for v in box)
        pose = T["geometry_msgs/msg/PoseWithCovariance"](
            pose=T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                             orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0,
                                                                                           w=1.0)),
            covariance=np.zeros(36, dtype=np.float64))
        hyp = T["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id=label, score=1.0), pose=pose)
        bbox = T["vision_msgs/msg/BoundingBox2D"](
            center=T["vision_msgs/msg/Pose2D"](position=T["vision_msgs/msg/Point2D"](x=x + w / 2.0, y=y + h / 2.0),
                                               theta=0.0), size_x=w, size_y=h)
        dets.append(T["vision_msgs/msg/Detection2D"](header=header, results=[hyp], bbox=bbox, id="ground_truth"))
    return T[DETECTIONS](header=header, detections=dets)
