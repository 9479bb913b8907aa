"""Offline RGB-T input for `ckd track`: image folders, videos, in-memory arrays, dataset layouts, first GT box.

The benchmark layouts of eval-protocol.md work directly: LasHeR/RGBT234/RGBT210
(`visible/`, `infrared/`, `init.txt`), GTOT (`v/`, `i/`, `init.txt` / `groundTruth_v.txt`),
VTUAV (`rgb/`, `ir/`, `rgb.txt`). Frames of a folder come in natural name order
(`ckd_ros.frames.reader.natural_key`); videos are read until the stream ends (container frame
counts and fps are often missing or wrong in raw MJPEG/H.264 streams).
"""
from __future__ import annotations

import pathlib
import re
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ckd_ros.errors import CKDError, FrameError
from ckd_ros.frames.datasets import DATASETS
from ckd_ros.frames.reader import IMAGE_EXTS, bgr_to_rgb, list_images, read_rgb, read_thermal_raw, to_uint8

DEFAULT_FPS = 30.0  # when a video does not say (or says something absurd), and for image folders
__all__ = ["IMAGE_EXTS", "FrameSource", "ArraySource", "detect_layout", "parse_box_row", "read_first_box"]
# (rgb dir, thermal dir) pairs in the order they are tried: the benchmark readers' folders, then others
_BENCHMARK_DIRS = [(rgb, tir) for cls in DATASETS.values() for rgb in cls.image_dirs[0] for tir in cls.image_dirs[1]]
LAYOUT_DIRS = tuple(dict.fromkeys(_BENCHMARK_DIRS + [("rgb", "thermal"), ("color", "thermal"), ("rgb", "tir")]))
GT_FILES = ("init.txt", "rgb.txt", "visible.txt", "groundTruth_v.txt")


def detect_layout(seq_dir: pathlib.Path) -> Tuple[pathlib.Path, pathlib.Path, Optional[pathlib.Path]]:
    """(rgb folder, thermal folder, GT file or None) of a dataset sequence folder."""
    if not seq_dir.is_dir():
        raise CKDError(f"sequence folder {seq_dir} does not exist "
                       "(give a folder with RGB and thermal frames)")
    for rgb_name, tir_name in LAYOUT_DIRS:
        if (seq_dir / rgb_name).is_dir() and (seq_dir / tir_name).is_dir():
            gt = next((seq_dir / n for n in GT_FILES if (seq_dir / n).is_file()), None)
            return seq_dir / rgb_name, seq_dir / tir_name, gt
    tried = ", ".join(f"{a}/+{b}/" for a, b in LAYOUT_DIRS)
    raise CKDError(f"{seq_dir} has no RGB/thermal sub-folder pair (looked for {tried}); "
                   "use --rgb PATH --thermal PATH for other layouts")


def parse_box_row(line: str, ltrb: bool = False) -> List[float]:
    """One GT row -> [x, y, w, h]: comma/space/tab separated; 8 values = polygon -> its bounding box."""
    values = [float(v) for v in re.split(r"[,\s]+", line.strip()) if v]
    if len(values) == 8:
        xs, ys = values[0::2], values[1::2]
        return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    if len(values) != 4:
        raise ValueError(f"expected 4 or 8 numbers, got {len(values)}")
    if ltrb:  # GTOT groundTruth_*.txt: x1 y1 x2 y2, converted without +1 (GTOT convention)
        x1, y1, x2, y2 = values
        return [x1, y1, x2 - x1, y2 - y1]
    return values


def read_first_box(gt_file: pathlib.Path) -> List[float]:
    ltrb = gt_file.name.startswith("groundTruth_")
    try:
        with open(gt_file, encoding="utf-8") as fh:
            for line in fh:
                if line.strip() and not line.lstrip().startswith("#"):
                    return parse_box_row(line, ltrb)
    except (OSError, ValueError) as exc:
        raise CKDError(f"cannot read the first box from {gt_file}: {exc}; give --init X,Y,W,H") from None
    raise CKDError(f"{gt_file} holds no box; give --init X,Y,W,H")


class FrameSource:
    """Frames of an image folder (natural name order) or a video file, as RGB-ordered arrays.

    Default: every frame HxWx3 uint8 RGB (`read_rgb`). `unchanged=True` (thermal) keeps the stored
    bit depth and channel count (`read_thermal_raw`: 16-bit PNG/TIFF stays uint16, HxW). With a
    `normalizer` (a `ThermalNormalizer`) each frame is converted by it after reading: HxWx3 uint8.
    Videos are decoded until the stream ends; `len()` counts the decodable frames (one pass of
    `grab()` on first use), never the container's CAP_PROP_FRAME_COUNT. Unreadable files raise
    `FrameError` naming the file.
    """

    def __init__(self, path: pathlib.Path, unchanged: bool = False, normalizer=None) -> None:
        self.path = pathlib.Path(path)
        self.unchanged = unchanged
        self.normalizer = normalizer
        self.files: Optional[List[pathlib.Path]] = None
        self._count: Optional[int] = None
        if self.path.is_dir():
            self.files = list_images(self.path)
            if not self.files:
                raise FrameError(f"no images ({', '.join(IMAGE_EXTS)}) in {self.path}; give a folder of frames "
                                 "or a video file")
            self._count = len(self.files)
            self.fps = DEFAULT_FPS
        elif self.path.is_file():
            cap = self._open()
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            cap.release()
            self.fps = fps if 0.0 < fps <= 1000.0 else DEFAULT_FPS  # raw streams report 0 or 90000
        else:
            raise FrameError(f"{self.path} does not exist (give an image folder or a video file)")

    def _open(self):
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise FrameError(f"cannot open video {self.path} (unsupported codec or not a video); "
                             "convert it to an image folder, e.g. ffmpeg -i VIDEO %06d.png")
        return cap

    @property
    def count(self) -> int:
        """Number of frames (videos: decodable frames, counted once)."""
        if self._count is None:
            cap = self._open()
            n = 0
            try:
                while cap.grab():
                    n += 1
            finally:
                cap.release()
            self._count = n
        return self._count

    def __len__(self) -> int:
        return self.count

    def _finish(self, img: np.ndarray) -> np.ndarray:
        if self.normalizer is not None:
            return self.normalizer(img)
        return img

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.files is not None:
            read = read_thermal_raw if (self.unchanged or self.normalizer is not None) else read_rgb
            for path in self.files:
                yield self._finish(read(path))
            return
        cap = self._open()
        try:
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                yield self._finish(bgr_to_rgb(to_uint8(img)))
        finally:
            cap.release()


class ArraySource:
    """In-memory frames (a list or an N x H x W [x C] array) with the `FrameSource` interface.

    RGB frames must be HxWx3 uint8 RGB; thermal frames any dtype the thermal conversion takes. With a
    `normalizer`, each frame is converted by it when iterated.
    """

    def __init__(self, frames: Sequence[np.ndarray], fps: float = DEFAULT_FPS, normalizer=None) -> None:
        self.frames = frames
        self.fps = float(fps)
        self.normalizer = normalizer
        self.path = pathlib.Path("<arrays>")

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> np.ndarray:
        img = np.asarray(self.frames[i])
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        return self.normalizer(img) if self.normalizer is not None else img

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self.frames)):
            yield self[i]
