"""Dataset readers for GTOT, RGBT234, RGBT210, LasHeR and VTUAV: sequence lists, ground truth, frames.

Each reader accepts the official layout and the annotation-only layout of the evaluation fixtures
(`docs/eval.md` lists both). Ground truth comes back as `x y w h` float arrays whatever the file held
(GTOT corners, 8-number polygons, commas/spaces/tabs, CRLF). Problems raise `CKDError` with a message
that names the file and says what to pass instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ckd_ros.boxes import ltrb_to_ltwh, polygon_to_ltwh
from ckd_ros.errors import CKDError
from ckd_ros.frames.reader import IMAGE_EXTS, read_pair
from ckd_ros.frames.reader import list_images as _list_frames
from ckd_ros.frames.textio import read_matrix, read_names

IMAGE_EXTENSIONS = IMAGE_EXTS
SequenceSelection = Union[None, str, Path, Sequence[str]]


@dataclass(frozen=True)
class GroundTruth:
    """Annotations of one sequence, as the metrics use them."""

    name: str
    boxes: Tuple[np.ndarray, ...]  # (L, 4) x y w h; visible first, then infrared (one array if single GT)
    init_box: np.ndarray  # (4,) the box a tracker initialises from (frame 0)
    stride: int = 1  # ground-truth row i annotates image frame i * stride (VTUAV: 10)

    @property
    def length(self) -> int:
        return len(self.boxes[0])


@dataclass(frozen=True)
class SequenceFrames:
    """Image paths of one sequence, frame i of `rgb` paired with frame i of `tir`."""

    name: str
    rgb: List[Path]
    tir: List[Path]

    def __len__(self) -> int:
        return len(self.rgb)

    def read(self, i: int, normalizer=None) -> Tuple[np.ndarray, np.ndarray]:
        """Frame pair i as the tracker takes it: (HxWx3 uint8 RGB, HxWx3 uint8 thermal), read by
        `ckd_ros.frames.reader.read_pair` (thermal through the one thermal conversion, default settings
        unless `normalizer` is given). Raises `FrameError` naming an unreadable file."""
        return read_pair(self.rgb[i], self.tir[i], normalizer)


def list_images(folder: Path) -> List[Path]:
    """Image files of a folder in natural name order (`ckd_ros.frames.reader.natural_key`)."""
    return _list_frames(folder)


class Dataset:
    """Common part of the readers; subclasses set the layout constants and `_read_gt`."""

    protocol = ""
    title = ""
    list_files: Tuple[str, ...] = ()  # sequence-list files, relative to the root
    seq_roots: Tuple[str, ...] = ("",)  # where sequence folders may live, relative to the root
    marker = ""  # file inside <seq>/ that marks a sequence folder
    gt_files: Tuple[str, ...] = ()  # annotation files inside <seq>/ used by the metrics
    image_dirs: Tuple[Tuple[str, ...], Tuple[str, ...]] = ((), ())  # (visible names, infrared names)
    hint = ""  # what the root must hold, for error messages

    def __init__(self, root: Union[str, Path], sequences: SequenceSelection = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            what = "does not exist" if not self.root.exists() else "is not a folder"
            raise CKDError(f"{self.title} root {self.root} {what}; pass --root the folder that holds {self.hint}")
        self.seq_root = self._find_seq_root()
        self.names = self._select(sequences)
        self._gt_cache: Dict[str, GroundTruth] = {}
        for name in self.names:
            self._check_sequence(name)

    # ---- layout ---------------------------------------------------------------------------
    def _find_seq_root(self) -> Path:
        for rel in self.seq_roots:
            cand = self.root / rel if rel else self.root
            if cand.is_dir() and any((d / self.marker).is_file() for d in _subdirs(cand)):
                return cand
        return self.root

    def _discover(self) -> List[str]:
        return sorted(d.name for d in _subdirs(self.seq_root) if (d / self.marker).is_file())

    def _list_file(self) -> Optional[Path]:
        for rel in self.list_files:
            if (self.root / rel).is_file():
                return self.root / rel
        return None

    def _select(self, sequences: SequenceSelection) -> List[str]:
        if isinstance(sequences, (str, Path)):
            path = Path(sequences).expanduser()
            if not path.is_file():
                raise CKDError(f"sequence list {path} does not exist; give a text file with one name per line")
            names = read_names(path)
            source = str(path)
        elif sequences is not None:
            names = [str(s) for s in sequences]
            source = "the --sequences selection"
        else:
            list_file = self._list_file()
            names = read_names(list_file) if list_file else self._discover()
            source = str(list_file) if list_file else None
        if not names:
            where = f"{source} is empty" if source else f"found no {self._layout_text()} under {self.root}"
            raise CKDError(f"{self.root} does not look like a {self.title} root: {where}; "
                           f"pass --root the folder that holds {self.hint}")
        self.list_source = source
        return names

    def _layout_text(self) -> str:
        lists = " or ".join(self.list_files)
        return f"{lists} and no <sequence>/{self.marker}" if lists else f"<sequence>/{self.marker}"

    def sequence_dir(self, name: str) -> Path:
        return self.seq_root / name

    def _annotation_paths(self, name: str) -> List[Path]:
        return [self.sequence_dir(name) / f for f in self.gt_files]

    def _check_sequence(self, name: str) -> None:
        for path in self._annotation_paths(name):
            if not path.is_file():
                listed = f" (listed in {self.list_source})" if self.list_source else ""
                raise CKDError(f"sequence {name!r}{listed} has no ground truth: {path} not found; check that "
                               f"--root is the {self.title} folder holding {self.hint}")

    # ---- ground truth ---------------------------------------------------------------------
    def ground_truth(self, name: str) -> GroundTruth:
        if name not in self._gt_cache:
            self._gt_cache[name] = self._read_gt(name)
        return self._gt_cache[name]

    def _read_gt(self, name: str) -> GroundTruth:
        boxes = tuple(read_gt_file(p) for p in self._annotation_paths(name))
        _check_same_length(name, self._annotation_paths(name), boxes)
        return GroundTruth(name, boxes, boxes[0][0].copy())

    # ---- frames ---------------------------------------------------------------------------
    def frames(self, name: str) -> SequenceFrames:
        """Visible/infrared image paths of one sequence (needs the dataset with its images)."""
        seq_dir = self.sequence_dir(name)
        found = []
        for names in self.image_dirs:
            folder = next((seq_dir / n for n in names if (seq_dir / n).is_dir()), None)
            if folder is None:
                raise CKDError(f"sequence {name!r} has no image folder {seq_dir}/{names[0]}/; "
                               f"--root must be the {self.title} dataset with its images ({self.hint})")
            images = list_images(folder)
            if not images:
                raise CKDError(f"image folder {folder} holds no {'/'.join(IMAGE_EXTENSIONS)} files")
            found.append(images)
        rgb, tir = found
        if len(rgb) != len(tir):
            raise CKDError(f"sequence {name!r}: {len(rgb)} visible but {len(tir)} infrared images; "
                           "the two folders must hold one image per frame each")
        return SequenceFrames(name, rgb, tir)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterable[str]:
        return iter(self.names)


class GTOT(Dataset):
    protocol, title = "gtot", "GTOT"
    list_files = ("SequencesName.txt",)
    marker = "groundTruth_v.txt"
    gt_files = ("groundTruth_v.txt", "groundTruth_i.txt")
    image_dirs = (("v",), ("i",))
    hint = "SequencesName.txt and <seq>/groundTruth_v.txt, groundTruth_i.txt (images in <seq>/v, <seq>/i)"

    def _read_gt(self, name: str) -> GroundTruth:
        # groundTruth_{v,i}.txt hold corners x1 y1 x2 y2; w = x2 - x1 as in the GTOT toolkit
        paths = self._annotation_paths(name)
        boxes = tuple(read_gt_file(p, corners=True) for p in paths)
        _check_same_length(name, paths, boxes)
        return GroundTruth(name, boxes, boxes[0][0].copy())


class RGBT234(Dataset):
    protocol, title = "rgbt234", "RGBT234"
    list_files = ("SequencesName.txt",)
    marker = "visible.txt"
    gt_files = ("visible.txt", "infrared.txt")
    image_dirs = (("visible",), ("infrared",))
    hint = "SequencesName.txt and <seq>/visible.txt, infrared.txt (images in <seq>/visible, <seq>/infrared)"

    def _read_gt(self, name: str) -> GroundTruth:
        gt = super()._read_gt(name)
        # CKD's own loader initialises from init.txt (17 sequences differ from visible.txt row 1)
        init = self.sequence_dir(name) / "init.txt"
        if init.is_file():
            gt = GroundTruth(name, gt.boxes, read_gt_file(init)[0].copy())
        return gt


class RGBT210(Dataset):
    protocol, title = "rgbt210", "RGBT210"
    list_files = ("SequencesName.txt",)
    marker = "init.txt"
    gt_files = ("init.txt",)
    image_dirs = (("visible",), ("infrared",))
    hint = "<seq>/init.txt (images in <seq>/visible, <seq>/infrared), optionally SequencesName.txt"


class LasHeR(Dataset):
    protocol, title = "lasher", "LasHeR"
    list_files = ("all_dataset_lashertest.txt", "sequence_evaluation_config/all_dataset_lashertest.txt",
                  "lashertest.txt")
    seq_roots = ("", "testingset", "test")
    marker = "init.txt"
    gt_files = ("init.txt",)
    image_dirs = (("visible",), ("infrared",))
    hint = ("all_dataset_lashertest.txt and annos/<seq>.txt (toolkit layout), or testingset/<seq>/init.txt "
            "with visible/ and infrared/ images")
    attribute_dirs = ("AttriSeqsTxt", "annos/att", "att")

    def __init__(self, root, sequences: SequenceSelection = None) -> None:
        root_path = Path(root).expanduser()
        self.annos = root_path / "annos" if (root_path / "annos").is_dir() else None
        super().__init__(root, sequences)

    def _discover(self) -> List[str]:
        if self.annos is not None:
            return sorted(p.stem for p in self.annos.glob("*.txt") if p.is_file())
        return super()._discover()

    def _annotation_paths(self, name: str) -> List[Path]:
        # the toolkit reads annos/<seq>.txt; the dataset itself has <seq>/init.txt (same numbers)
        if self.annos is not None and (self.annos / f"{name}.txt").is_file():
            return [self.annos / f"{name}.txt"]
        return super()._annotation_paths(name)

    def attribute_file(self, name: str) -> Optional[Path]:
        for rel in self.attribute_dirs:
            for base in (self.root, self.root.parent):
                path = base / rel / f"{name}.txt"
                if path.is_file():
                    return path
        return None


class VTUAV(Dataset):
    protocol, title = "vtuav", "VTUAV"
    seq_roots = ("", "test/short-term", "test_ST/test_ST", "test_ST", "short-term", "test")
    marker = "rgb.txt"
    gt_files = ("rgb.txt", "ir.txt")
    image_dirs = (("rgb",), ("ir", "ir_gray"))
    hint = "<seq>/rgb.txt and <seq>/ir.txt (or test/short-term/<seq>/...; images in <seq>/rgb, <seq>/ir)"

    def _read_gt(self, name: str) -> GroundTruth:
        gt = super()._read_gt(name)
        return GroundTruth(name, gt.boxes, gt.init_box, stride=10)  # one annotation every 10th frame


DATASETS = {cls.protocol: cls for cls in (LasHeR, RGBT234, RGBT210, GTOT, VTUAV)}


def open_dataset(protocol: str, root: Union[str, Path], sequences: SequenceSelection = None) -> Dataset:
    key = normalise_protocol(protocol)
    return DATASETS[key](root, sequences)


def normalise_protocol(protocol: str) -> str:
    key = str(protocol).strip().lower().replace("-", "").replace("_", "")
    key = {"lashertest": "lasher", "lashertestingset": "lasher", "vtuavst": "vtuav"}.get(key, key)
    if key not in DATASETS:
        raise CKDError(f"unknown dataset/protocol {protocol!r}; choose one of {', '.join(DATASETS)}")
    return key


def read_gt_file(path: Path, corners: bool = False) -> np.ndarray:
    """One annotation file -> (L, 4) x y w h. 4 columns are x y w h (or x1 y1 x2 y2 with `corners`);
    8 columns are a polygon, reduced to its bounding box."""
    data = read_matrix(path, "ground-truth file")
    if data.shape[0] == 0:
        raise CKDError(f"ground-truth file {path} is empty")
    if data.shape[1] == 4:
        return ltrb_to_ltwh(data) if corners else data
    if data.shape[1] == 8:
        return polygon_to_ltwh(data)
    raise CKDError(f"ground-truth file {path} has {data.shape[1]} values per line; expected 4 (x y w h) or 8 "
                   "(polygon)")


def _check_same_length(name: str, paths: Sequence[Path], boxes: Sequence[np.ndarray]) -> None:
    if len({len(b) for b in boxes}) > 1:
        detail = ", ".join(f"{p.name}: {len(b)}" for p, b in zip(paths, boxes))
        raise CKDError(f"sequence {name!r}: the visible and infrared ground truths differ in length ({detail}); "
                       "the official toolkits need one row per annotated frame in both")


def _subdirs(folder: Path) -> List[Path]:
    try:
        return [d for d in folder.iterdir() if d.is_dir()]
    except OSError:
        return []
