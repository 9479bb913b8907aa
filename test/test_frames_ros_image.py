"""ROS image conversion against an independent reference: the `rosbags-image` package (test-only).

Every encoding both support gives identical pixels: the passthrough array, the RGB stream's rgb8
image and the thermal stream's values, in both byte orders; row padding gives the same pixels as the
unpadded message; compressed jpeg/png (8 and 16 bit) go through the same code. Also: thermal 8UC3,
one-line `FrameError`s naming encoding and size.
"""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from ckd_ros.errors import FrameError
from ckd_ros.frames.ros_image import (
    ENCODINGS,
    ImageConversionError,
    decode_rgb,
    decode_rgb_compressed,
    decode_thermal,
    decode_thermal_compressed,
    image_msg_to_rgb8,
    image_msg_to_thermal,
    numpy_image_to_array,
)

ref = pytest.importorskip("rosbags.image", reason="rosbags-image is a test dependency (pip install rosbags-image)")

RNG = np.random.default_rng(11)
REF_NAMED = sorted(e for e in ref.image.ENCODINGMAP if e in ENCODINGS)  # nv12/nv21: not ours
GENERIC = sorted(e for e in ENCODINGS if e[0].isdigit())
BOTH = REF_NAMED + GENERIC
RGB_NAMED = [e for e in REF_NAMED]  # every named encoding the reference converts to rgb8 is an RGB-stream one


def sample(encoding: str, h: int = 6, w: int = 8) -> np.ndarray:
    dtype, ch = ENCODINGS[encoding]
    shape = (h, w) if ch == 1 else (h, w, ch)
    if np.dtype(dtype).kind == "f":
        return RNG.normal(30.0, 5.0, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def msg_of(arr: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False):
    """A duck-typed sensor_msgs/Image built byte by byte."""
    height, width = arr.shape[:2]
    wire = arr.astype(arr.dtype.newbyteorder(">" if bigendian else "<"))
    rows = wire.reshape(height, -1).view(np.uint8).reshape(height, -1)
    padded = np.full((height, rows.shape[1] + pad), 0xAB, dtype=np.uint8)
    padded[:, :rows.shape[1]] = rows
    return SimpleNamespace(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                           step=padded.shape[1], data=padded.tobytes())


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", BOTH)
def test_passthrough_matches_reference(encoding, bigendian):
    msg = msg_of(sample(encoding), encoding, bigendian=bigendian)
    expected = ref.image_to_cvimage(msg)
    got = numpy_image_to_array(msg)
    assert got.dtype == expected.dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", RGB_NAMED)
def test_rgb_stream_matches_reference_rgb8(encoding, bigendian):
    msg = msg_of(sample(encoding), encoding, bigendian=bigendian)
    expected = ref.image_to_cvimage(msg, "rgb8")
    got = decode_rgb(msg)
    assert got.dtype == np.uint8 and got.shape == (6, 8, 3)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "mono8", "8UC1", "32FC1", "64FC1", "16SC1", "32SC1"])
def test_thermal_single_channel_values_match_reference(encoding):
    msg = msg_of(sample(encoding), encoding, bigendian=True)
    got, palette = decode_thermal(msg)
    assert not palette
    np.testing.assert_array_equal(got, ref.image_to_cvimage(msg))


@pytest.mark.parametrize("encoding,space", [("rgb8", "rgb8"), ("bgr8", "rgb8"), ("rgba8", "rgb8"), ("bgra8", "rgb8"),
                                            ("rgb16", "rgb16"), ("bgr16", "rgb16"), ("bgra16", "rgb16")])
def test_thermal_palette_in_rgb_order_matches_reference(encoding, space):
    msg = msg_of(sample(encoding), encoding)
    got, palette = decode_thermal(msg)
    assert palette
    np.testing.assert_array_equal(got, ref.image_to_cvimage(msg, space))


@pytest.mark.parametrize("encoding", BOTH)
def test_row_padding_and_byte_order_do_not_change_pixels(encoding):
    arr = sample(encoding)
    plain = numpy_image_to_array(msg_of(arr, encoding))
    for pad in (1, 7):
        np.testing.assert_array_equal(numpy_image_to_array(msg_of(arr, encoding, pad=pad, bigendian=True)), plain)
    if encoding in RGB_NAMED:
        np.testing.assert_array_equal(decode_rgb(msg_of(arr, encoding, pad=5, bigendian=True)),
                                      ref.image_to_cvimage(msg_of(arr, encoding), "rgb8"))


def test_generic_colour_is_opencv_bgr_on_the_rgb_stream():
    arr = sample("8UC3")
    np.testing.assert_array_equal(decode_rgb(msg_of(arr, "8UC3")), arr[:, :, ::-1])
    arr4 = sample("16UC4")
    np.testing.assert_array_equal(decode_rgb(msg_of(arr4, "16UC4")),
                                  (arr4[:, :, 2::-1] * (255.0 / 65535.0)).astype(np.uint8))


def test_thermal_8uc3_gray_is_accepted_and_not_a_palette():
    gray = sample("mono8")
    three = np.dstack([gray, gray, gray])
    raw, palette = decode_thermal(msg_of(three, "8UC3"))
    assert not palette
    np.testing.assert_array_equal(raw[:, :, 0], gray)
    # the thermal image the tracker gets equals the one from mono8 of the same values
    np.testing.assert_array_equal(image_msg_to_thermal(msg_of(three, "8UC3")),
                                  image_msg_to_thermal(msg_of(gray, "mono8")))


@pytest.mark.parametrize("encoding,y", [("yuv422", 1), ("uyvy", 1), ("yuyv", 0), ("yuv422_yuy2", 0)])
def test_thermal_yuv_takes_the_luma_plane(encoding, y):
    arr = sample(encoding)
    raw, palette = decode_thermal(msg_of(arr, encoding))
    assert not palette and raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, arr[:, :, y])


def compressed(img: np.ndarray, ext: str, fmt: str):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return SimpleNamespace(format=fmt, data=buf.tobytes())


def test_compressed_colour_matches_reference():
    bgr = sample("bgr8", 16, 24)
    for ext, fmt in ((".png", "bgr8; png compressed bgr8"), (".jpg", "bgr8; jpeg compressed bgr8")):
        msg = compressed(bgr, ext, fmt)
        np.testing.assert_array_equal(decode_rgb_compressed(msg), ref.compressed_image_to_cvimage(msg, "rgb8"))
        np.testing.assert_array_equal(image_msg_to_rgb8(msg), decode_rgb_compressed(msg))


def test_compressed_16bit_png_keeps_thermal_counts_and_matches_raw_path():
    counts = sample("mono16", 12, 16)
    msg = compressed(counts, ".png", "mono16; png compressed mono16")
    raw, palette = decode_thermal_compressed(msg)
    assert not palette and raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, counts)
    np.testing.assert_array_equal(image_msg_to_thermal(msg), image_msg_to_thermal(msg_of(counts, "mono16")))
    # compressed_depth_image_transport: 12-byte header, then the PNG
    depth = SimpleNamespace(format="16UC1; compressedDepth png", data=b"\0" * 12 + msg.data)
    np.testing.assert_array_equal(decode_thermal_compressed(depth)[0], counts)
    # 16-bit colour png on the RGB stream: scaled like a raw rgb16 image
    colour = sample("bgr16", 12, 16)
    np.testing.assert_array_equal(decode_rgb_compressed(compressed(colour, ".png", "bgr16; png compressed bgr16")),
                                  decode_rgb(msg_of(colour, "bgr16")))


@pytest.mark.parametrize("msg,stream,text", [
    (SimpleNamespace(height=4, width=4, encoding="nv21", is_bigendian=0, step=4, data=bytes(24)), "rgb",
     "unsupported encoding 'nv21'; publish yuv422"),
    (SimpleNamespace(height=4, width=4, encoding="mono16", is_bigendian=0, step=8, data=bytes(20)), "thermal",
     "4x4 mono16); the message is truncated"),
    (SimpleNamespace(height=4, width=4, encoding="bayer_rggb8", is_bigendian=0, step=4, data=bytes(16)), "thermal",
     "is not a thermal image"),
    (SimpleNamespace(height=4, width=4, encoding="32FC1", is_bigendian=0, step=16, data=bytes(64)), "rgb",
     "has no colour meaning"),
    (SimpleNamespace(format="jpeg", data=b"not a jpeg"), "rgb", "could not decode compressed image"),
    (SimpleNamespace(format="32FC1; compressedDepth png", data=bytes(40)), "thermal", "quantised inverse depth"),
])
def test_errors_are_one_line_frame_errors(msg, stream, text):
    convert = image_msg_to_rgb8 if stream == "rgb" else image_msg_to_thermal
    with pytest.raises(FrameError) as err:
        convert(msg)
    assert isinstance(err.value, ImageConversionError) and isinstance(err.value, ValueError)
    assert text in str(err.value) and "\n" not in str(err.value) and str(err.value).startswith(stream + ":")


def test_rosbags_message_objects_decode_like_duck_typed_ones():
    """Messages as the rosbags library deserialises them from a bag (data as numpy arrays)."""
    from rosbags.typesys import Stores, get_typestore

    types = get_typestore(Stores.ROS2_HUMBLE).types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=2),
                                          frame_id="thermal")
    counts = sample("mono16")
    plain = msg_of(counts, "mono16", pad=4, bigendian=True)
    img = types["sensor_msgs/msg/Image"](header=header, height=plain.height, width=plain.width, encoding="mono16",
                                         is_bigendian=1, step=plain.step,
                                         data=np.frombuffer(plain.data, np.uint8).copy())
    np.testing.assert_array_equal(decode_thermal(img)[0], counts)
    bgr = sample("bgr8", 12, 16)
    comp = types["sensor_msgs/msg/CompressedImage"](header=header, format="bgr8; png compressed bgr8",
                                                    data=cv2.imencode(".png", bgr)[1].reshape(-1).copy())
    np.testing.assert_array_equal(image_msg_to_rgb8(comp), bgr[:, :, ::-1])
