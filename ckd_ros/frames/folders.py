"""Offline RGB-T input for `ckd track`: image folders or videos, dataset layouts, first GT box.

The benchmark layouts of eval-protocol.md work directly: LasHeR/RGBT234/RGBT210
(`visible/`, `infrared/`, `init.txt`), GTOT (`v/`, `i/`, `init.txt` / `groundTruth_v.txt`),
VTUAV (`rgb/`, `ir/`, `rgb.txt`).
"""
from __future__ import annotations

import pathlib
import re
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np

from ckd_ros.errors import CKDError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# (rgb dir, thermal dir) pairs in the order they are tried
LAYOUT_DIRS = (("visible", "infrared"), ("v", "i"), ("rgb", "ir"), ("rgb", "ir_gray"),
               ("rgb", "thermal"), ("color", "thermal"), ("rgb", "tir"))
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


def _to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


class FrameSource:
    """Frames of an image folder (sorted names) or a video file, as RGB-ordered arrays.

    `unchanged=True` keeps the stored bit depth and channel count (16-bit thermal PNG/TIFF stays
    uint16); otherwise frames are 8-bit 3-channel, as the official loader reads them.
    """

    def __init__(self, path: pathlib.Path, unchanged: bool = False) -> None:
        self.path = pathlib.Path(path)
        self.unchanged = unchanged
        self.files: Optional[List[pathlib.Path]] = None
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            if not self.files:
                raise CKDError(f"no images ({', '.join(IMAGE_EXTS)}) in {self.path}")
            self.count = len(self.files)
            self.fps = 30.0
        elif self.path.is_file():
            cap = cv2.VideoCapture(str(self.path))
            if not cap.isOpened():
                raise CKDError(f"cannot open video {self.path} (unsupported codec or not a video)")
            self.count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
            cap.release()
        else:
            raise CKDError(f"{self.path} does not exist (give an image folder or a video file)")

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.files is not None:
            flag = cv2.IMREAD_UNCHANGED if self.unchanged else cv2.IMREAD_COLOR
            for path in self.files:
                img = cv2.imread(str(path), flag)
                if img is None:
                    raise CKDError(f"cannot read image {path} (corrupt or unsupported format)")
                yield _to_rgb(img)
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                yield _to_rgb(img)
        finally:
            cap.release()
