"""sensor_msgs/Image <-> numpy, through cv_bridge when it imports and works, else pure numpy.

The numpy path honours `step` (row padding) and `is_bigendian`, and checks every field before
touching the buffer, so a malformed message gives one `ImageConversionError` with a reason
instead of a crash. Both paths return the same arrays (`test_node_conversion.py` compares them
where cv_bridge is installed). Nothing here imports rclpy: messages are duck-typed.
"""
from __future__ import annotations

import array
import sys
from typing import Optional, Tuple

import cv2
import numpy as np

# encoding -> (dtype, channels)
ENCODINGS = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "8UC3": (np.uint8, 3),
    "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
    # 4:2:2 packed YUV; ROS's "yuv422" is UYVY byte order, "yuv422_yuy2" is YUYV
    "yuv422": (np.uint8, 2),
    "uyvy": (np.uint8, 2),
    "yuv422_yuy2": (np.uint8, 2),
    "yuyv": (np.uint8, 2),
}
RGB_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3", "yuv422", "uyvy",
                 "yuv422_yuy2", "yuyv")
THERMAL_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1", "32FC1", "rgb8", "bgr8", "rgba8", "bgra8")
PALETTE_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")

_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "8UC3": cv2.COLOR_BGR2RGB,  # OpenCV's default channel order
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
    "8UC1": cv2.COLOR_GRAY2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,
    "yuyv": cv2.COLOR_YUV2RGB_YUYV,
}


class ImageConversionError(ValueError):
    """A message that cannot become an array; `key` groups reasons for throttled logging."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def check_image_msg(msg, allowed=None, stream: str = "image") -> Tuple[np.dtype, int, int]:
    """Validate the header fields against the buffer; returns (dtype, channels, row_bytes)."""
    height, width, step, enc = int(msg.height), int(msg.width), int(msg.step), msg.encoding
    if height <= 0 or width <= 0:
        raise ImageConversionError("zero_size", f"{stream}: zero-size image ({width}x{height})")
    if enc not in ENCODINGS or (allowed is not None and enc not in allowed):
        supported = ", ".join(allowed if allowed is not None else ENCODINGS)
        raise ImageConversionError("encoding", f"{stream}: unsupported encoding '{enc}' (supported: {supported})")
    dtype, channels = ENCODINGS[enc]
    if channels == 2 and width % 2:
        raise ImageConversionError("size", f"{stream}: {enc} needs an even width, got {width}")
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise ImageConversionError(
            "step", f"{stream}: step {step} is smaller than width*bytes_per_pixel = {row_bytes} ({enc})")
    if len(msg.data) < step * height:
        raise ImageConversionError(
            "short_data",
            f"{stream}: data has {len(msg.data)} bytes, expected step*height = {step}*{height} = {step * height}")
    return np.dtype(dtype), channels, row_bytes


def numpy_image_to_array(msg, allowed=None, stream: str = "image") -> np.ndarray:
    """Passthrough decode (like cv_bridge's 'passthrough'): HxW or HxWxC in the message's dtype."""
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
    """cv_bridge's passthrough decode, after the same field checks (cv_bridge would crash on short data)."""

    name = "cv_bridge"

    def __init__(self, bridge) -> None:
        self.bridge = bridge

    def to_array(self, msg, allowed=None, stream: str = "image") -> np.ndarray:
        check_image_msg(msg, allowed, stream)
        arr = self.bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
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

def array_to_rgb8(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Passthrough array of an RGB-stream encoding -> HxWx3 uint8 RGB (what the tracker takes)."""
    if encoding == "rgb8":
        return arr
    code = _TO_RGB.get(encoding)
    if code is None:
        raise ImageConversionError("encoding", f"rgb: encoding '{encoding}' cannot be converted to rgb8")
    return cv2.cvtColor(np.ascontiguousarray(arr), code)


def decode_rgb(msg, converter) -> np.ndarray:
    arr = converter.to_array(msg, RGB_ENCODINGS, "rgb")
    return array_to_rgb8(arr, msg.encoding)


def decode_thermal(msg, converter) -> Tuple[np.ndarray, bool]:
    """Thermal message -> (HxW raw values, or HxWx3 RGB for palette images; is_palette)."""
    arr = converter.to_array(msg, THERMAL_ENCODINGS, "thermal")
    enc = msg.encoding
    if enc in PALETTE_ENCODINGS:
        return array_to_rgb8(arr, enc), True
    return arr, False


def decode_compressed(msg, stream: str) -> Tuple[np.ndarray, str]:
    """sensor_msgs/CompressedImage (jpeg/png) -> (passthrough array, equivalent raw encoding)."""
    fmt = getattr(msg, "format", "")
    if "compressedDepth" in fmt:
        raise ImageConversionError(
            "encoding", f"{stream}: compressedDepth transport is not supported; use 'compressed' (png)")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise ImageConversionError("decode", f"{stream}: could not decode compressed image (format '{fmt}')")
    if img.ndim == 2:
        enc = "mono16" if img.dtype == np.uint16 else "mono8"
    elif img.shape[2] == 4:
        enc = "bgra8"
    else:
        enc = "bgr8"
    if img.dtype not in (np.uint8, np.uint16) or (img.ndim == 3 and img.dtype != np.uint8):
        raise ImageConversionError("encoding", f"{stream}: compressed image has unsupported type {img.dtype}")
    return img, enc


def decode_rgb_compressed(msg) -> np.ndarray:
    img, enc = decode_compressed(msg, "rgb")
    if enc == "mono16":
        raise ImageConversionError("encoding", "rgb: 16-bit compressed image on the RGB stream")
    return array_to_rgb8(img, enc)


def decode_thermal_compressed(msg) -> Tuple[np.ndarray, bool]:
    img, enc = decode_compressed(msg, "thermal")
    if enc in PALETTE_ENCODINGS:
        return array_to_rgb8(img, enc), True
    return img, False


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
