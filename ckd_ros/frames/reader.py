"""The one frame reader: frame names in temporal order, image files -> arrays, one error type.

* `natural_key` / `list_images`: every place that lists frames sorts names naturally (digit runs
  compare as numbers): `1.png, 2.png, 10.png` (ffmpeg `%d` output) come in temporal order, and
  `000001.jpg` / `1.jpg` styles mixed in one folder still interleave by number.
* `read_rgb(path)`: any image file -> HxWx3 uint8 RGB (the official `cv2.imread` + BGR->RGB for 8-bit
  files; 16-bit colour is scaled to 8 bit with the ROS rule `v * 255 / 65535`, truncated).
* `read_thermal_raw(path)`: the stored values, read with `IMREAD_UNCHANGED` so 16-bit counts stay
  uint16 and float TIFF stays float (HxW, or HxWx3 RGB order for colour files).
* `read_thermal(path)`: `read_thermal_raw` + the one thermal conversion (`ckd_ros.frames.thermal`,
  default settings unless a normalizer is given) -> HxWx3 uint8, what the tracker takes.
"""
from __future__ import annotations

import pathlib
import re
from typing import Iterable, List, Sequence, Tuple, Union

import cv2
import numpy as np

from ckd_ros.errors import FrameError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
PathLike = Union[str, pathlib.Path]
_DIGITS = re.compile(r"(\d+)")


class ImageConversionError(FrameError, ValueError):
    """A frame that cannot become an array (file or message); `key` groups reasons for throttled logs.

    A `FrameError` (stage "conversion") and, for callers that catch the tracker's input errors, a
    `ValueError`. The message is one line naming the source, encoding/size and what to do.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def natural_key(name: str) -> Tuple:
    """Sort key of a frame name: digit runs compare as integers, text case-insensitively.

    `natural_key("img10.png") > natural_key("img9.png")`; equal numbers with different zero padding
    (`01` / `1`) tie-break on the plain name so the order is total and deterministic.
    """
    parts = _DIGITS.split(str(name))
    # split() alternates text, digits, text, ...: position parity fixes each element's type
    key = tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts))
    return key + (str(name),)


def natural_sorted(items: Iterable, key=None) -> List:
    """`sorted(items)` by `natural_key` of `key(item)` (default: the item's name for paths, else str)."""
    def name_of(item):
        if key is not None:
            return key(item)
        return item.name if isinstance(item, pathlib.PurePath) else str(item)

    return sorted(items, key=lambda item: natural_key(name_of(item)))


def list_images(folder: PathLike, exts: Sequence[str] = IMAGE_EXTS) -> List[pathlib.Path]:
    """Image files of a folder (by extension, case-insensitive) in natural name order."""
    folder = pathlib.Path(folder)
    try:
        entries = [p for p in folder.iterdir() if p.suffix.lower() in exts and p.is_file()]
    except OSError as exc:
        raise FrameError(f"cannot list frames in {folder}: {exc.strerror or exc}; give a readable image folder") \
            from None
    return natural_sorted(entries)


def bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    """OpenCV channel order -> RGB: HxW gray -> 3 equal channels, BGR -> RGB, BGRA -> RGB (alpha dropped)."""
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def to_uint8(img: np.ndarray, what: str = "image") -> np.ndarray:
    """8-bit as is; 16-bit unsigned scaled `v * 255 / 65535` and truncated (cv_bridge / rosbags-image rule)."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return np.multiply(img, 255.0 / 65535.0).astype(np.uint8)
    raise ImageConversionError("encoding", f"{what}: {img.dtype} pixels cannot be shown as 8-bit colour; "
                               "give 8- or 16-bit unsigned images")


def _imread(path: PathLike, flags: int) -> np.ndarray:
    path = pathlib.Path(path)
    img = cv2.imread(str(path), flags)
    if img is None or img.size == 0:
        if not path.exists():
            raise ImageConversionError("read", f"cannot read image {path}: the file does not exist; check the path")
        raise ImageConversionError("read", f"cannot read image {path}: the file is truncated, empty or not an "
                                   "image; replace or remove it")
    return img


def read_rgb(path: PathLike) -> np.ndarray:
    """Image file -> HxWx3 uint8 RGB. Raises `ImageConversionError` (a `FrameError`) naming the file."""
    img = _imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    return bgr_to_rgb(to_uint8(img, str(path)))


def read_thermal_raw(path: PathLike) -> np.ndarray:
    """Thermal file -> stored values (`IMREAD_UNCHANGED`): HxW uint8/uint16/float, or HxWx3 RGB order."""
    img = _imread(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return img


def read_thermal(path: PathLike, normalizer=None, keep_gray: bool = False) -> np.ndarray:
    """Thermal file -> HxWx3 uint8 through the one thermal conversion (`default_normalizer()` if None).

    `keep_gray=True` returns HxW when the result is gray (3 equal channels), which crops faster.
    """
    from ckd_ros.frames.thermal import default_normalizer  # noqa: PLC0415 - thermal imports this module

    norm = normalizer if normalizer is not None else default_normalizer()
    try:
        return norm.convert(read_thermal_raw(path), keep_gray=keep_gray)
    except ImageConversionError as exc:
        raise ImageConversionError(exc.key, f"thermal frame {path}: {exc}") from None


def read_pair(rgb_path: PathLike, tir_path: PathLike, normalizer=None) -> Tuple[np.ndarray, np.ndarray]:
    """(RGB HxWx3 uint8, thermal HxWx3 uint8) of one frame pair: what `Tracker.initialize/track` take."""
    return read_rgb(rgb_path), read_thermal(tir_path, normalizer)

