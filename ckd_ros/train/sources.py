"""Training sequences: benchmark folders (LasHeR, RGBT234/210, GTOT, VTUAV), synthetic RGB-T, in-memory arrays.

Every source becomes a list of `TrainSequence` (frame loader + boxes + visibility), so the sampler does
not care where frames come from. A "sequence provider" is any list of (rgb_frames, tir_frames, boxes)
with RGB frames indexable HxWx3 uint8 arrays in RGB order, thermal frames in any form the thermal
conversion takes (HxW uint8/uint16/float, or 8-bit colour) and boxes (N, 4) x, y, w, h.

Frames are read and converted by `ckd_ros.frames` exactly as `ckd track`, `ckd benchmark` and the node
do: `read_rgb` / `read_thermal_raw` and the one thermal conversion with the shared default settings
(`ckd_ros.frames.thermal.DEFAULT_THERMAL`), so training sees the inputs the deployed tracker sees.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ckd_ros.errors import CKDError
from ckd_ros.frames.datasets import DATASETS
from ckd_ros.frames.folders import parse_box_row
from ckd_ros.frames.reader import list_images, read_rgb, read_thermal
from ckd_ros.frames.thermal import default_normalizer

# kind -> (RGB folder names, thermal folder names, GT file names, GT row stride in frames); the image
# folder names are the benchmark readers' (`ckd_ros.frames.datasets`), the GT files those of training sets
_TRAIN_GT = {"lasher": (("init.txt", "visible.txt"), 1), "rgbt234": (("init.txt", "visible.txt"), 1),
             "rgbt210": (("init.txt",), 1), "gtot": (("init.txt",), 1),
             "vtuav": (("rgb.txt",), 10)}  # VTUAV: one box every 10th frame
LAYOUTS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[str, ...], int]] = {
    kind: (DATASETS[kind].image_dirs[0], DATASETS[kind].image_dirs[1]) + gt for kind, gt in _TRAIN_GT.items()}


class ArrayFrames:
    """Frames held in memory (lists or N x H x W [x C] arrays); thermal through the one conversion.

    Returns (HxWx3 uint8 RGB, thermal uint8: HxW when gray - replicated to 3 channels after cropping,
    same bytes, less work - or HxWx3 for 8-bit colour thermal).
    """

    def __init__(self, rgb: Sequence[np.ndarray], tir: Sequence[np.ndarray]):
        self.rgb, self.tir = rgb, tir
        self.normalizer = default_normalizer()

    def __call__(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        rgb, tir = np.asarray(self.rgb[i]), np.asarray(self.tir[i])
        if tir.ndim == 3 and tir.shape[2] == 1:
            tir = tir[:, :, 0]  # H x W x 1 thermal: treated as gray
        return rgb, self.normalizer.convert(tir, keep_gray=True)


class FileFrames:
    """Frames read from image files on demand by `ckd_ros.frames.reader` (the tracker's reader).

    Unreadable files raise `FrameError` naming the file (the training set skips and counts them).
    """

    def __init__(self, rgb: Sequence[pathlib.Path], tir: Sequence[pathlib.Path]):
        self.rgb, self.tir = list(rgb), list(tir)
        self.normalizer = default_normalizer()

    def __call__(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        return read_rgb(self.rgb[i]), read_thermal(self.tir[i], self.normalizer, keep_gray=True)

    def paths(self, i: int) -> Tuple[pathlib.Path, pathlib.Path]:
        return self.rgb[i], self.tir[i]


@dataclass
class TrainSequence:
    name: str
    frames: Callable[[int], Tuple[np.ndarray, np.ndarray]]  # frame index -> (rgb, tir)
    boxes: np.ndarray  # (N, 4) float32 x, y, w, h of frame i
    visible: np.ndarray  # (N,) bool: target annotated and present

    def __len__(self) -> int:
        return len(self.boxes)


def _visible(boxes: np.ndarray) -> np.ndarray:
    return np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)


def sequence_from_arrays(name: str, rgb_frames, tir_frames, boxes) -> TrainSequence:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    n = min(len(rgb_frames), len(tir_frames), len(boxes))
    if n == 0:
        raise CKDError(f"sequence {name} is empty")
    return TrainSequence(name, ArrayFrames(rgb_frames, tir_frames), boxes[:n], _visible(boxes[:n]))


def array_sequences(items: Sequence[Any], prefix: str = "seq") -> List[TrainSequence]:
    """The provider interface: [(rgb_frames, tir_frames, boxes), ...] -> TrainSequences."""
    return [sequence_from_arrays(f"{prefix}{k:04d}", *item) for k, item in enumerate(items)]


def synthetic_sequences(num_sequences: int = 8, num_frames: int = 100, size=(320, 256), seed: int = 0,
                        scenario: Optional[str] = None) -> List[TrainSequence]:
    """Deterministic RGB-T sequences from ckd_ros.synthetic (thermal as 8-bit gray, kept in memory)."""
    from ckd_ros.synthetic import make_sequence, thermal_to_gray8
    out = []
    for k in range(int(num_sequences)):
        seq = make_sequence(int(seed) + k, num_frames=int(num_frames), size=tuple(int(v) for v in size),
                            scenario=scenario)
        out.append(sequence_from_arrays(f"synthetic{int(seed) + k:05d}", seq.rgb, thermal_to_gray8(seq.thermal16),
                                        seq.boxes))
    return out


def _read_boxes(path: pathlib.Path) -> np.ndarray:
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(parse_box_row(line))
        except ValueError:
            rows.append([np.nan] * 4)  # unparsable row (e.g. 'NaN'): the frame is not usable
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def _first(folder: pathlib.Path, names: Sequence[str], is_dir: bool) -> Optional[pathlib.Path]:
    for name in names:
        cand = folder / name
        if (cand.is_dir() if is_dir else cand.is_file()):
            return cand
    return None


def folder_sequence(kind: str, seq_dir: pathlib.Path) -> TrainSequence:
    rgb_names, tir_names, gt_names, stride = LAYOUTS[kind]
    rgb_dir, tir_dir = _first(seq_dir, rgb_names, True), _first(seq_dir, tir_names, True)
    gt = _first(seq_dir, gt_names, False)
    if rgb_dir is None or tir_dir is None or gt is None:
        raise CKDError(f"{seq_dir} is not a {kind} sequence (needs {rgb_names[0]}/, {tir_names[0]}/ and "
                       f"{gt_names[0]})")
    rgb, tir = list_images(rgb_dir), list_images(tir_dir)
    boxes = _read_boxes(gt)
    visible = _visible(boxes)
    absence = seq_dir / "absence.label"
    if kind == "vtuav" and absence.is_file():  # one 0/1 flag per annotated frame, 1 = target absent
        flags = np.array([int(float(v)) for v in absence.read_text().split()], dtype=np.int64)
        n = min(len(flags), len(visible))
        visible[:n] &= flags[:n] == 0
    # annotated row i shows image i*stride; drop rows without an image
    n = min(len(boxes), (min(len(rgb), len(tir)) + stride - 1) // stride)
    frames = FileFrames(rgb[::stride][:n], tir[::stride][:n])
    return TrainSequence(seq_dir.name, frames, boxes[:n], visible[:n])


def _names(selection) -> Optional[List[str]]:
    if selection is None:
        return None
    if isinstance(selection, (list, tuple)):
        return [str(s) for s in selection]
    path = pathlib.Path(selection)
    if not path.is_file():
        raise CKDError(f"sequence list {path} not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def folder_sequences(kind: str, root: Union[str, pathlib.Path], sequences=None) -> List[TrainSequence]:
    """All sequences of a benchmark training folder. `root` holds the sequence folders (VTUAV: its
    `train/` is used when present), or is one sequence folder itself."""
    if kind not in LAYOUTS:
        raise CKDError(f"unknown dataset type {kind!r}; known: {', '.join(LAYOUTS)}")
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise CKDError(f"{kind} root {root} is not a folder")
    if kind == "vtuav" and (root / "train").is_dir():
        root = root / "train"
    rgb_names = LAYOUTS[kind][0]
    if _first(root, rgb_names, True) is not None:
        return [folder_sequence(kind, root)]
    names = _names(sequences)
    dirs = [root / n for n in names] if names is not None else sorted(
        d for d in root.iterdir() if d.is_dir() and _first(d, rgb_names, True) is not None)
    if not dirs:
        raise CKDError(f"no {kind} sequences under {root} (expected <seq>/{rgb_names[0]}/ folders)")
    return [folder_sequence(kind, d) for d in dirs]


def build_sources(entries: Sequence[Dict[str, Any]]) -> List[Tuple[List[TrainSequence], float]]:
    """The `data.datasets` config list -> [(sequences, sampling ratio)]."""
    out = []
    for entry in entries:
        entry = dict(entry)
        kind = entry.pop("type")
        ratio = float(entry.pop("ratio", 1.0))
        if kind == "synthetic":
            allowed = {"num_sequences", "num_frames", "size", "seed", "scenario"}
            _no_extra(entry, allowed, kind)
            seqs = synthetic_sequences(**entry)
        elif kind == "arrays":
            _no_extra(entry, {"sequences"}, kind)
            seqs = array_sequences(entry["sequences"])
        else:
            _no_extra(entry, {"root", "sequences"}, kind)
            if "root" not in entry:
                raise CKDError(f"dataset {kind} needs a root folder")
            seqs = folder_sequences(kind, entry["root"], entry.get("sequences"))
        out.append((seqs, ratio))
    return out


def _no_extra(entry: Dict[str, Any], allowed: set, kind: str) -> None:
    extra = sorted(set(entry) - allowed)
    if extra:
        raise CKDError(f"dataset {kind}: unknown keys {extra}; allowed: {sorted(allowed | {'type', 'ratio'})}")
