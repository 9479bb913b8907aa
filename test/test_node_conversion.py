"""Image conversion: every encoding of the contract, row padding (`step`), byte order, malformed
messages, compressed images; and the cv_bridge path against the numpy path where cv_bridge exists."""
from __future__ import annotations

import importlib.util
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from ckd_ros.frames.ros_image import (
    ENCODINGS,
    ImageConversionError,
    NumpyImageConverter,
    array_to_image_msg,
    decode_compressed,
    decode_rgb,
    decode_thermal,
    decode_thermal_compressed,
    numpy_image_to_array,
)

RNG = np.random.default_rng(3)


def raw_msg(arr: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False):
    """A duck-typed sensor_msgs/Image built byte by byte (independent of the code under test)."""
    height, width = arr.shape[:2]
    wire = arr.astype(arr.dtype.newbyteorder(">" if bigendian else "<"))
    rows = wire.reshape(height, -1).view(np.uint8).reshape(height, -1)
    padded = np.zeros((height, rows.shape[1] + pad), dtype=np.uint8)
    padded[:, :rows.shape[1]] = rows
    padded[:, rows.shape[1]:] = 0xAB  # garbage in the padding must not leak into the image
    return SimpleNamespace(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                           step=padded.shape[1], data=padded.tobytes(),
                           header=SimpleNamespace(frame_id="f"))


def sample(encoding: str, h: int = 6, w: int = 8) -> np.ndarray:
    dtype, ch = ENCODINGS[encoding]
    shape = (h, w) if ch == 1 else (h, w, ch)
    if np.dtype(dtype).kind == "f":
        return RNG.normal(30.0, 5.0, size=shape).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("bigendian", [False, True])
def test_passthrough_all_encodings(encoding, pad, bigendian):
    arr = sample(encoding)
    out = numpy_image_to_array(raw_msg(arr, encoding, pad, bigendian))
    assert out.dtype == arr.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("encoding,code", [
    ("rgb8", None), ("bgr8", cv2.COLOR_BGR2RGB), ("rgba8", cv2.COLOR_RGBA2RGB), ("bgra8", cv2.COLOR_BGRA2RGB),
    ("mono8", cv2.COLOR_GRAY2RGB), ("yuv422", cv2.COLOR_YUV2RGB_UYVY), ("uyvy", cv2.COLOR_YUV2RGB_UYVY),
    ("yuv422_yuy2", cv2.COLOR_YUV2RGB_YUYV), ("yuyv", cv2.COLOR_YUV2RGB_YUYV)])
def test_rgb_stream_to_rgb8(encoding, code):
    arr = sample(encoding)
    rgb = decode_rgb(raw_msg(arr, encoding, pad=3), NumpyImageConverter())
    expected = arr if code is None else cv2.cvtColor(arr, code)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, expected)


def test_bgr_channel_order_is_swapped():
    arr = np.zeros((2, 2, 3), np.uint8)
    arr[..., 0] = 255  # blue in bgr8
    rgb = decode_rgb(raw_msg(arr, "bgr8"), NumpyImageConverter())
    assert rgb[0, 0].tolist() == [0, 0, 255]


@pytest.mark.parametrize("encoding", ["mono8", "mono16", "16UC1", "32FC1"])
def test_thermal_raw_values_kept(encoding):
    arr = sample(encoding)
    out, palette = decode_thermal(raw_msg(arr, encoding, pad=2, bigendian=True), NumpyImageConverter())
    assert not palette
    np.testing.assert_array_equal(out, arr)


def test_thermal_palette_flagged():
    arr = sample("bgr8")
    out, palette = decode_thermal(raw_msg(arr, "bgr8"), NumpyImageConverter())
    assert palette
    np.testing.assert_array_equal(out, arr[..., ::-1])


def test_nan_thermal_passes_through_unchanged():
    arr = sample("32FC1")
    arr[1, 2] = np.nan
    arr[3, 3] = np.inf
    out, _ = decode_thermal(raw_msg(arr, "32FC1"), NumpyImageConverter())
    assert np.isnan(out[1, 2]) and np.isinf(out[3, 3])


@pytest.mark.parametrize("mutate,key,text", [
    (lambda m: setattr(m, "encoding", "nv21"), "encoding", "unsupported encoding 'nv21'"),
    (lambda m: setattr(m, "data", m.data[:-1]), "short_data", "expected step*height"),
    (lambda m: setattr(m, "step", 3), "step", "smaller than width*bytes_per_pixel"),
    (lambda m: setattr(m, "height", 0), "zero_size", "zero-size"),
    (lambda m: setattr(m, "width", 0), "zero_size", "zero-size"),
])
def test_malformed_messages_raise_with_reason(mutate, key, text):
    msg = raw_msg(sample("rgb8"), "rgb8")
    mutate(msg)
    with pytest.raises(ImageConversionError) as err:
        decode_rgb(msg, NumpyImageConverter())
    assert err.value.key == key and text in str(err.value)


def test_temperature_encoding_on_rgb_stream_rejected():
    with pytest.raises(ImageConversionError, match="32FC1 .* has no colour meaning"):
        decode_rgb(raw_msg(sample("32FC1"), "32FC1"), NumpyImageConverter())


def test_odd_width_yuv_rejected():
    msg = raw_msg(np.zeros((2, 3, 2), np.uint8), "yuyv")
    with pytest.raises(ImageConversionError, match="even width"):
        decode_rgb(msg, NumpyImageConverter())


def test_array_to_image_roundtrip():
    arr = sample("16UC1")
    msg = array_to_image_msg(arr, "16UC1", image_cls=SimpleNamespace)
    assert msg.step == arr.shape[1] * 2
    msg.header = SimpleNamespace()
    np.testing.assert_array_equal(numpy_image_to_array(msg), arr)


def test_compressed_png16_and_jpeg():
    tir = (RNG.integers(7000, 9000, size=(16, 20))).astype(np.uint16)
    ok, png = cv2.imencode(".png", tir)
    assert ok
    out, palette = decode_thermal_compressed(SimpleNamespace(format="png", data=png.tobytes()))
    assert not palette
    np.testing.assert_array_equal(out, tir)
    bgr = np.full((16, 16, 3), (255, 0, 0), np.uint8)
    ok, jpg = cv2.imencode(".jpg", bgr)
    img, enc = decode_compressed(SimpleNamespace(format="jpeg", data=jpg.tobytes()), "rgb")
    assert enc == "bgr8" and img.shape == (16, 16, 3)
    with pytest.raises(ImageConversionError, match="could not decode"):
        decode_compressed(SimpleNamespace(format="jpeg", data=b"notajpeg"), "rgb")


@pytest.mark.ros
def test_make_converter_picks_a_working_converter():
    from ckd_ros.frames.ros_image import make_converter

    conv, reason = make_converter()
    if importlib.util.find_spec("cv_bridge") is None:
        assert conv.name == "numpy" and "cv_bridge" in reason
    arr = sample("mono16")
    np.testing.assert_array_equal(conv.to_array(raw_msg(arr, "mono16", pad=4, bigendian=True)), arr)


@pytest.mark.ros
@pytest.mark.skipif(importlib.util.find_spec("cv_bridge") is None,
                    reason="cv_bridge is not installed (not in the isaacsim-ros2 wheel); on a robot with "
                    "ros-<distro>-cv-bridge this compares it with the numpy converter")
def test_cv_bridge_matches_numpy():
    from sensor_msgs.msg import Image

    from ckd_ros.frames.ros_image import CvBridgeImageConverter, make_converter

    conv, reason = make_converter()
    assert isinstance(conv, CvBridgeImageConverter), reason
    cases = [(e, p, b) for e in sorted(ENCODINGS) for p in (0, 4) for b in (False, True)]
    for encoding, pad, bigendian in cases:
        src = raw_msg(sample(encoding), encoding, pad, bigendian)
        msg = Image(height=src.height, width=src.width, encoding=encoding, is_bigendian=src.is_bigendian,
                    step=src.step, data=src.data)
        try:
            ref = NumpyImageConverter().to_array(msg)
        except ImageConversionError:
            continue
        got = conv.to_array(msg)
        assert got.dtype == ref.dtype, (encoding, got.dtype, ref.dtype)
        np.testing.assert_array_equal(got, ref)
        if encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422", "yuv422_yuy2"):
            bridge_rgb = conv.bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
            np.testing.assert_array_equal(bridge_rgb, decode_rgb(msg, NumpyImageConverter()))


def test_module_imports_without_ros():
    """The converter is usable outside ROS (offline tools): importing it must not pull in rclpy."""
    import subprocess

    code = "import sys, ckd_ros.frames.ros_image; sys.exit('rclpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
