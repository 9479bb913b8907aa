"""sensor_msgs/Image and CompressedImage <-> numpy: every encoding a camera driver publishes.

Messages are duck-typed (`encoding`, `height`, `width`, `step`, `is_bigendian`, `data`; `format` for
CompressedImage), so nothing here imports rclpy and the offline tools (rosbag2 reading) share it.

Encodings (ROS `sensor_msgs/image_encodings.hpp`):

* colour `rgb8 bgr8 rgba8 bgra8 rgb16 bgr16 rgba16 bgra16`, mono `mono8 mono16`;
* generic `8UC1-4 8SC1-4 16UC1-4 16SC1-4 32SC1-4 32FC1-4 64FC1-4` (3/4 channels are OpenCV's BGR/BGRA);
* packed YUV 4:2:2 `yuv422`/`uyvy` (UYVY byte order) and `yuv422_yuy2`/`yuyv` (YUYV);
* raw Bayer `bayer_{rggb,bggr,gbrg,grbg}{8,16}` (demosaiced with OpenCV, as cv_bridge does).

`step` (row padding) and `is_bigendian` are honoured; every field is checked before the buffer is
touched, so a malformed message gives one `ImageConversionError` (a `FrameError`) line naming the stream,
encoding and size and what to do. Not supported (refused in one line): `nv21`/`nv24` (planar YUV whose
row layout in an Image message is not fixed by ROS; publish yuv422/rgb8 instead).

Per stream: `decode_rgb` -> HxWx3 uint8 RGB (16-bit scaled `v * 255 / 65535`, truncated, as cv_bridge
and rosbags-image do); `decode_thermal` -> the raw values (HxW in the message's dtype, or RGB-ordered
colour for palette images, Y for YUV) for the one thermal conversion (`ckd_ros.frames.thermal`).
CompressedImage (jpeg/png, 8 and 16 bit, also `compressedDepth` png) is decoded with OpenCV and then
goes through the very same per-stream code. The pixels equal the independent `rosbags-image`
package's on every encoding both support (`test/test_frames_ros_image.py`).
"""
from __future__ import annotations

import array
import sys
from typing import Optional, Tuple

import cv2
import numpy as np

from ckd_ros.frames.reader import ImageConversionError, to_uint8

__all__ = ["ENCODINGS", "RGB_ENCODINGS", "THERMAL_ENCODINGS", "PALETTE_ENCODINGS", "ImageConversionError",
           "check_image_msg", "numpy_image_to_array", "array_to_rgb8", "array_to_thermal", "decode_rgb",
           "decode_thermal", "decode_compressed", "decode_rgb_compressed", "decode_thermal_compressed",
           "image_msg_to_rgb8", "image_msg_to_thermal", "array_to_image_msg", "make_converter", "describe"]

_GENERIC_DEPTHS = {"8U": np.uint8, "8S": np.int8, "16U": np.uint16, "16S": np.int16, "32S": np.int32,
                   "32F": np.float32, "64F": np.float64}
_BAYER = {  # ROS pattern -> OpenCV code (OpenCV names the pattern by the second row: rggb -> BayerBG)
    "rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB,
}

# encoding -> (dtype, channels, layout); layout: mono, rgb, bgr, rgba, bgra, uyvy, yuyv, bayer_xxxx, generic
_LAYOUT = {
    "mono8": (np.uint8, 1, "mono"), "mono16": (np.uint16, 1, "mono"),
    "rgb8": (np.uint8, 3, "rgb"), "bgr8": (np.uint8, 3, "bgr"),
    "rgba8": (np.uint8, 4, "rgba"), "bgra8": (np.uint8, 4, "bgra"),
    "rgb16": (np.uint16, 3, "rgb"), "bgr16": (np.uint16, 3, "bgr"),
    "rgba16": (np.uint16, 4, "rgba"), "bgra16": (np.uint16, 4, "bgra"),
    # 4:2:2 packed YUV; ROS's "yuv422" is UYVY byte order, "yuv422_yuy2" is YUYV
    "yuv422": (np.uint8, 2, "uyvy"), "uyvy": (np.uint8, 2, "uyvy"),
    "yuv422_yuy2": (np.uint8, 2, "yuyv"), "yuyv": (np.uint8, 2, "yuyv"),
}
for _pattern in _BAYER:
    _LAYOUT[f"bayer_{_pattern}8"] = (np.uint8, 1, f"bayer_{_pattern}")
    _LAYOUT[f"bayer_{_pattern}16"] = (np.uint16, 1, f"bayer_{_pattern}")
for _depth, _dtype in _GENERIC_DEPTHS.items():
    for _n in (1, 2, 3, 4):
        _LAYOUT[f"{_depth}C{_n}"] = (_dtype, _n, "generic")

#: encoding -> (dtype, channels) of the passthrough array
ENCODINGS = {enc: (dtype, ch) for enc, (dtype, ch, _) in _LAYOUT.items()}
#: what the RGB stream accepts: 8/16-bit unsigned mono, colour, YUV, Bayer, 8UC1/3/4 and 16UC1/3/4
RGB_ENCODINGS = tuple(enc for enc, (dtype, ch, lay) in _LAYOUT.items()
                      if dtype in (np.uint8, np.uint16) and ch != 2 or lay in ("uyvy", "yuyv"))
#: what the thermal stream accepts: any one-channel type (raw counts, temperatures), colour palettes, YUV (Y)
THERMAL_ENCODINGS = tuple(enc for enc, (dtype, ch, lay) in _LAYOUT.items()
                          if not lay.startswith("bayer") and (ch != 2 or lay in ("uyvy", "yuyv"))
                          and (ch == 1 or dtype in (np.uint8, np.uint16)))
PALETTE_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16",
                     "8UC3", "8UC4", "16UC3", "16UC4")

_TO_RGB = {"bgr": cv2.COLOR_BGR2RGB, "rgba": cv2.COLOR_RGBA2RGB, "bgra": cv2.COLOR_BGRA2RGB,
           "mono": cv2.COLOR_GRAY2RGB, "uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuyv": cv2.COLOR_YUV2RGB_YUYV}
_GENERIC_AS = {1: "mono", 3: "bgr", 4: "bgra"}  # OpenCV's channel order for nUC3 / nUC4


def _layout(encoding: str, stream: str):
    info = _LAYOUT.get(encoding)
    if info is None:
        hint = ("publish yuv422/yuyv, rgb8 or bgr8 instead (image_proc can convert)"
                if str(encoding).lower() in ("nv21", "nv24", "nv12") else
                "use one of rgb8, bgr8, mono8, mono16, 16UC1, 32FC1, yuv422, bayer_*8/16")
        raise ImageConversionError("encoding", f"{stream}: unsupported encoding '{encoding}'; {hint}")
    return info


def check_image_msg(msg, allowed=None, stream: str = "image") -> Tuple[np.dtype, int, int]:
    """Validate the header fields against the buffer; returns (dtype, channels, row_bytes).

    `allowed`: None (every encoding of `ENCODINGS`) or a collection of encoding names.
    """
    height, width, step, enc = int(msg.height), int(msg.width), int(msg.step), msg.encoding
    if height <= 0 or width <= 0:
        raise ImageConversionError("zero_size", f"{stream}: zero-size image ({width}x{height} {enc}); "
                                   "check the camera driver")
    dtype, channels, layout = _layout(enc, stream)
    if allowed is not None and enc not in allowed:
        raise ImageConversionError("encoding", f"{stream}: unsupported encoding '{enc}' on this stream "
                                   f"(supported: {', '.join(allowed)})")
    if layout in ("uyvy", "yuyv") and width % 2:
        raise ImageConversionError("size", f"{stream}: {enc} needs an even width, got {width}x{height}")
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise ImageConversionError(
            "step", f"{stream}: step {step} is smaller than width*bytes_per_pixel = {row_bytes} "
                    f"({width}x{height} {enc}); the message header is inconsistent")
    if len(msg.data) < step * height:
        raise ImageConversionError(
            "short_data", f"{stream}: data has {len(msg.data)} bytes, expected step*height = {step}*{height} = "
                          f"{step * height} ({width}x{height} {enc}); the message is truncated")
    return np.dtype(dtype), channels, row_bytes


def numpy_image_to_array(msg, allowed=None, stream: str = "image") -> np.ndarray:
    """Passthrough decode (like cv_bridge's 'passthrough'): HxW or HxWxC in the message's dtype, native order."""
    dtype, channels, row_bytes = check_image_msg(msg, allowed, stream)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    raw = np.frombuffer(msg.data, dtype=np.uint8, count=step * height).reshape(height, step)
    if step != row_bytes:
        raw = np.ascontiguousarray(raw[:, :row_bytes])  # drop row padding
    arr = raw.view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    if dtype.itemsize > 1:
        arr = arr.astype(dtype, copy=False)  # to native byte order; no copy when it already is
    shape = (height, width) if channels == 1 else (height, width, channels)
    return arr.reshape(shape)


class NumpyImageConverter:
    """The package's own converter (no cv_bridge)."""

    name = "numpy"

    def to_array(self, msg, allowed=None, stream: str = "image") -> np.ndarray:
        return numpy_image_to_array(msg, allowed, stream)


class CvBridgeImageConverter:
    """cv_bridge's passthrough decode, after the same field checks (cv_bridge would crash on short data).

    Encodings cv_bridge cannot pass through (it lags behind ROS's list) are decoded by numpy.
    """

    name = "cv_bridge"

    def __init__(self, bridge) -> None:
        self.bridge = bridge

    def to_array(self, msg, allowed=None, stream: str = "image") -> np.ndarray:
        check_image_msg(msg, allowed, stream)
        try:
            arr = self.bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
        except Exception:  # CvBridgeError / TypeError on encodings it does not know
            return numpy_image_to_array(msg, allowed, stream)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        return arr


def _self_test_image():
    """A padded, big-endian 16-bit image: exercises step and byte order in one go."""

    class _Msg:  # duck-typed stand-in, so the self-test needs no ROS message import
        pass

    msg = _Msg()
    msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = 3, 5, "mono16", 1, 12
    values = np.arange(15, dtype=">u2").reshape(3, 5)
    padded = np.zeros((3, 12), dtype=np.uint8)
    padded[:, :10] = values.view(np.uint8).reshape(3, 10)
    msg.data = padded.tobytes()
    return msg, values.astype(np.uint16)


def make_converter(prefer: str = "auto", log=None):
    """cv_bridge when `prefer` allows it and it imports and decodes a test image correctly; else numpy.

    Returns (converter, reason) where reason says why numpy was chosen (None for cv_bridge).
    """
    if prefer == "numpy":
        return NumpyImageConverter(), "numpy converter requested"
    try:
        from cv_bridge import CvBridge  # noqa: PLC0415 - optional dependency

        bridge = CvBridge()
    except Exception as exc:  # ImportError, or a numpy ABI mismatch inside cv_bridge's boost module
        return NumpyImageConverter(), f"cv_bridge unavailable ({type(exc).__name__}: {exc})"
    try:
        from sensor_msgs.msg import Image  # noqa: PLC0415

        probe, expected = _self_test_image()
        msg = Image(height=probe.height, width=probe.width, encoding=probe.encoding,
                    is_bigendian=probe.is_bigendian, step=probe.step, data=probe.data)
        got = CvBridgeImageConverter(bridge).to_array(msg)
        if not np.array_equal(got, expected):
            raise ValueError("decoded test image differs from the expected values")
    except Exception as exc:
        return NumpyImageConverter(), f"cv_bridge failed its self-test ({exc})"
    return CvBridgeImageConverter(bridge), None


# ---- stream-level decoding -------------------------------------------------------------------

def array_to_rgb8(arr: np.ndarray, encoding: str, stream: str = "rgb") -> np.ndarray:
    """Passthrough array of `encoding` -> HxWx3 uint8 RGB (what the tracker takes).

    Colour/mono/generic 8- and 16-bit (16-bit scaled v*255/65535, truncated), YUV 4:2:2, Bayer
    (demosaiced at the stored depth, then scaled). Signed, float or 2-channel data has no colour
    meaning: `ImageConversionError`.
    """
    dtype, channels, layout = _layout(encoding, stream)
    if layout == "generic":
        if arr.dtype not in (np.uint8, np.uint16) or channels not in _GENERIC_AS:
            raise ImageConversionError(
                "encoding", f"{stream}: {encoding} ({arr.shape[1]}x{arr.shape[0]}) has no colour meaning; "
                "publish rgb8, bgr8, mono8 or mono16 on the RGB stream")
        layout = _GENERIC_AS[channels]
    if layout.startswith("bayer_"):
        return to_uint8(cv2.cvtColor(np.ascontiguousarray(arr), _BAYER[layout[6:]]), stream)
    if layout in ("uyvy", "yuyv"):
        return cv2.cvtColor(np.ascontiguousarray(arr), _TO_RGB[layout])
    arr = to_uint8(arr, f"{stream} ({encoding})")
    if layout == "rgb":
        return arr
    return cv2.cvtColor(np.ascontiguousarray(arr), _TO_RGB[layout])


def _is_gray(arr: np.ndarray) -> bool:
    """3/4-channel image whose colour channels are equal (checked on a subsample: cheap per frame)."""
    sub = arr[::7, ::7]
    return bool(np.array_equal(sub[..., 0], sub[..., 1]) and np.array_equal(sub[..., 0], sub[..., 2]))


def array_to_thermal(arr: np.ndarray, encoding: str, stream: str = "thermal") -> Tuple[np.ndarray, bool]:
    """Passthrough array of a thermal `encoding` -> (values for the thermal conversion, is_palette).

    One channel (mono, nUC1/nSC1/32FC1/64FC1...): HxW as published. Colour (rgb/bgr[a] 8/16, 8UC3/4,
    16UC3/4): HxWx3 in RGB order, is_palette True unless the channels are equal (a gray image sent as
    colour, e.g. 8UC3). YUV 4:2:2: the Y plane (HxW uint8). Bayer and 2-channel data: refused.
    """
    dtype, channels, layout = _layout(encoding, stream)
    if channels == 1 and not layout.startswith("bayer_"):
        return arr, False
    if layout == "uyvy":
        return np.ascontiguousarray(arr[:, :, 1]), False
    if layout == "yuyv":
        return np.ascontiguousarray(arr[:, :, 0]), False
    if layout == "generic" and channels in (3, 4) and arr.dtype in (np.uint8, np.uint16):
        layout = _GENERIC_AS[channels]
    if layout in ("rgb", "bgr", "rgba", "bgra"):
        rgb = arr[:, :, :3] if layout in ("rgb", "rgba") else arr[:, :, 2::-1]
        rgb = np.ascontiguousarray(rgb)
        return rgb, not _is_gray(rgb)
    raise ImageConversionError(
        "encoding", f"{stream}: {encoding} ({arr.shape[1]}x{arr.shape[0]}) is not a thermal image; publish "
        "mono16/16UC1 counts, 32FC1 temperatures or mono8 (check that the topic is the thermal camera)")


def decode_rgb(msg, converter=None) -> np.ndarray:
    """RGB-stream sensor_msgs/Image -> HxWx3 uint8 RGB (`array_to_rgb8`)."""
    converter = converter if converter is not None else NumpyImageConverter()
    arr = converter.to_array(msg, None, "rgb")
    return array_to_rgb8(arr, msg.encoding, "rgb")


def decode_thermal(msg, converter=None) -> Tuple[np.ndarray, bool]:
    """Thermal sensor_msgs/Image -> (raw values, is_palette) (`array_to_thermal`)."""
    converter = converter if converter is not None else NumpyImageConverter()
    arr = converter.to_array(msg, None, "thermal")
    return array_to_thermal(arr, msg.encoding, "thermal")


def _compressed_depth_payload(data: bytes, fmt: str, stream: str) -> bytes:
    """compressed_depth_image_transport: a 12-byte header (format + 2 floats) before a PNG."""
    if not fmt.split(";")[0].strip().upper().startswith("16U"):
        raise ImageConversionError(
            "encoding", f"{stream}: compressedDepth of '{fmt}' holds quantised inverse depth, not pixel "
            "values; use the 'compressed' (png) transport or raw images")
    return data[12:]


def decode_compressed(msg, stream: str) -> Tuple[np.ndarray, str]:
    """sensor_msgs/CompressedImage (jpeg/png, 8/16 bit) -> (passthrough array, equivalent raw encoding)."""
    fmt = str(getattr(msg, "format", ""))
    data = bytes(msg.data)
    if "compresseddepth" in fmt.lower():
        data = _compressed_depth_payload(data, fmt, stream)
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise ImageConversionError("decode", f"{stream}: could not decode compressed image (format '{fmt}', "
                                   f"{len(data)} bytes); check the transport (jpeg/png) and the camera driver")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageConversionError("encoding", f"{stream}: compressed image has unsupported type {img.dtype} "
                                   f"(format '{fmt}'); use 8- or 16-bit jpeg/png")
    bits = "8" if img.dtype == np.uint8 else "16"
    if img.ndim == 2:
        enc = "mono" + bits
    else:
        enc = ("bgra" if img.shape[2] == 4 else "bgr") + bits
    return img, enc


def decode_rgb_compressed(msg) -> np.ndarray:
    """RGB-stream CompressedImage -> HxWx3 uint8 RGB (the same code as raw images)."""
    img, enc = decode_compressed(msg, "rgb")
    return array_to_rgb8(img, enc, "rgb")


def decode_thermal_compressed(msg) -> Tuple[np.ndarray, bool]:
    """Thermal CompressedImage -> (raw values, is_palette) (the same code as raw images)."""
    img, enc = decode_compressed(msg, "thermal")
    return array_to_thermal(img, enc, "thermal")


def _is_compressed(msg) -> bool:
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def image_msg_to_rgb8(msg, converter=None) -> np.ndarray:
    """Image or CompressedImage on the RGB stream -> HxWx3 uint8 RGB."""
    return decode_rgb_compressed(msg) if _is_compressed(msg) else decode_rgb(msg, converter)


def image_msg_to_thermal(msg, normalizer=None, converter=None) -> np.ndarray:
    """Image or CompressedImage on the thermal stream -> HxWx3 uint8 through the one thermal conversion
    (`default_normalizer()` unless `normalizer` is given): what `ckd track`/the benchmark feed the tracker."""
    from ckd_ros.frames.thermal import default_normalizer  # noqa: PLC0415

    raw, _ = decode_thermal_compressed(msg) if _is_compressed(msg) else decode_thermal(msg, converter)
    return (normalizer if normalizer is not None else default_normalizer())(raw)


def array_to_image_msg(arr: np.ndarray, encoding: str, header=None, image_cls=None,
                       stamp_ns: Optional[int] = None, frame_id: Optional[str] = None):
    """HxW / HxWxC array -> sensor_msgs/Image (native byte order, no padding).

    `header`, or `stamp_ns` (int nanoseconds) and `frame_id`, set the header.
    """
    if image_cls is None:
        from sensor_msgs.msg import Image as image_cls  # noqa: PLC0415, N813
    arr = np.ascontiguousarray(arr)
    msg = image_cls()
    if header is not None:
        msg.header = header
    if stamp_ns is not None:
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_ns // 10**9, stamp_ns % 10**9
    if frame_id is not None:
        msg.header.frame_id = frame_id
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = int(arr.strides[0])
    # an array.array('B') is taken as is; bytes are validated element by element on Humble (~20 ms/MB)
    msg.data = array.array("B", arr.tobytes())
    return msg


def describe(msg: Optional[object]) -> str:
    """'640x512 mono16' for log lines."""
    if msg is None:
        return "none"
    return f"{getattr(msg, 'width', '?')}x{getattr(msg, 'height', '?')} {getattr(msg, 'encoding', '?')}"
