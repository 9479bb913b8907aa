"""Whole synthetic sequences (arrays + ground truth) and writing them in a dataset layout."""
from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import cv2
import numpy as np

from ckd_ros.synthetic.scene import SyntheticScene

LAYOUTS = ("lasher",)


@dataclass
class SyntheticSequence:
    rgb: np.ndarray  # N x H x W x 3 uint8, RGB order
    thermal16: np.ndarray  # N x H x W uint16 radiometric counts (kelvin * 100)
    boxes: np.ndarray  # N x 4 float32 ground truth x, y, w, h (top-left corner)
    scenario: str
    seed: int = 0
    effects: Tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.boxes)


def make_sequence(seed: int, num_frames: int = 100, size: Tuple[int, int] = (640, 512),
                  scenario: Optional[str] = None) -> SyntheticSequence:
    """`num_frames` frames of a SyntheticScene whose events (night, crossover, ...) fit in the sequence.

    size is (width, height); scenario None picks one from the seed (see scene.SCENARIOS).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    scene = SyntheticScene(seed, size, scenario=scenario, period=max(num_frames, 10))
    w, h = scene.width, scene.height
    rgb = np.empty((num_frames, h, w, 3), np.uint8)
    tir = np.empty((num_frames, h, w), np.uint16)
    boxes = np.empty((num_frames, 4), np.float32)
    for t in range(num_frames):
        rgb[t], tir[t], boxes[t] = scene.frame(t)
    return SyntheticSequence(rgb=rgb, thermal16=tir, boxes=boxes, scenario=scene.scenario, seed=int(seed),
                             effects=tuple(sorted(scene.effects)))


def thermal_to_gray8(thermal16: np.ndarray, percentiles=(1.0, 99.0)) -> np.ndarray:
    """N x H x W uint16 -> N x H x W uint8 with the per-frame percentile stretch the demo tracker uses.

    Training on these frames sees the same thermal images the deployed node makes from mono16.
    """
    from ckd_ros.frames.thermal import ThermalNormalizer  # numpy/OpenCV only

    norm = ThermalNormalizer("percentile", percentiles=percentiles)
    return np.stack([norm(frame)[..., 0] for frame in thermal16])


def write_sequence(seq: SyntheticSequence, root: Union[str, pathlib.Path], layout: str = "lasher",
                   rgb_ext: str = "jpg", thermal: str = "png16") -> pathlib.Path:
    """Write `seq` as a LasHeR-layout folder: visible/NNNNNN.<rgb_ext>, infrared/NNNNNN.png, init.txt.

    thermal='png16' keeps the 16-bit counts (readers must use IMREAD_UNCHANGED + a normaliser, as
    `ckd track` does); thermal='gray8' writes 8-bit 3-channel JPEGs like the real benchmarks,
    stretched per frame (1-99 percentiles) as the demo tracker does.
    visible.txt and infrared.txt hold the same boxes as init.txt (the cameras are aligned).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; supported: {LAYOUTS}")
    if thermal not in ("png16", "gray8"):
        raise ValueError(f"thermal must be 'png16' or 'gray8', got {thermal!r}")
    if rgb_ext not in ("jpg", "png"):
        raise ValueError(f"rgb_ext must be 'jpg' or 'png', got {rgb_ext!r}")
    root = pathlib.Path(root)
    vis, inf = root / "visible", root / "infrared"
    vis.mkdir(parents=True, exist_ok=True)
    inf.mkdir(parents=True, exist_ok=True)
    gray8 = thermal_to_gray8(seq.thermal16) if thermal == "gray8" else None
    for t in range(len(seq)):
        name = f"{t:06d}"
        cv2.imwrite(str(vis / f"{name}.{rgb_ext}"), cv2.cvtColor(seq.rgb[t], cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
        if gray8 is None:
            cv2.imwrite(str(inf / f"{name}.png"), seq.thermal16[t])
        else:
            cv2.imwrite(str(inf / f"{name}.jpg"), cv2.cvtColor(gray8[t], cv2.COLOR_GRAY2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
    rows = "\n".join(",".join(f"{v:g}" for v in box) for box in seq.boxes) + "\n"
    for name in ("init.txt", "visible.txt", "infrared.txt"):
        (root / name).write_text(rows, encoding="utf-8")
    return root
