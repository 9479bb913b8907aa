"""Tracker result folders: finding each sequence's file and reading it as `x y w h` boxes.

A folder holds `<seq>.txt` (pytracking/CKD, OSTrack family, LasHeR toolkit) or `<T>_<seq>.txt` (GTOT,
RGBT234 and VTUAV toolkits), where T is the folder name without a `_tracking_result` suffix. Other files
(`<seq>_time.txt`, logs) are ignored because only these two names are ever looked up.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np

from ckd_ros.boxes import corners_to_ltwh
from ckd_ros.errors import CKDError
from ckd_ros.frames.textio import read_matrix

LASHER_SUFFIX = "_tracking_result"


def tracker_name(results_dir: Path) -> str:
    name = Path(results_dir).resolve().name
    return name[: -len(LASHER_SUFFIX)] if name.endswith(LASHER_SUFFIX) and len(name) > len(LASHER_SUFFIX) else name


def find_result_file(results_dir: Path, seq: str, tracker: Optional[str] = None) -> Optional[Path]:
    results_dir = Path(results_dir)
    tracker = tracker or tracker_name(results_dir)
    for cand in (results_dir / f"{seq}.txt", results_dir / f"{tracker}_{seq}.txt"):
        if cand.is_file():
            return cand
    return None


def read_result_file(path: Path) -> np.ndarray:
    """(N, 4) x y w h. 8 columns are corners converted as MATLAB corner2rect (rounded half away from
    zero); 4 columns are used as they are, without rounding (as the official toolkits do)."""
    data = read_matrix(path, "result file")
    if data.shape[0] == 0:
        raise CKDError(f"result file {path} is empty; re-run the tracker on this sequence")
    if data.shape[1] == 4:
        return data
    if data.shape[1] == 8:
        return corners_to_ltwh(data)
    raise CKDError(f"result file {path} has {data.shape[1]} values per line; expected 4 (x y w h) or 8 "
                   "(corners x1 y1 x2 y2 x3 y3 x4 y4)")


def load_results(results_dir: Path, names: Iterable[str], tracker: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Read every sequence's boxes; one error naming all missing files (and how to name them)."""
    results_dir = Path(results_dir).expanduser()
    if not results_dir.is_dir():
        what = "does not exist" if not results_dir.exists() else "is not a folder"
        raise CKDError(f"results folder {results_dir} {what}; pass the folder holding <seq>.txt result files")
    tracker = tracker or tracker_name(results_dir)
    names = list(names)
    paths = {n: find_result_file(results_dir, n, tracker) for n in names}
    missing = [n for n, p in paths.items() if p is None]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise CKDError(f"{results_dir}: no result file for {len(missing)} of {len(names)} sequences ({shown}); "
                       f"expected <seq>.txt or {tracker}_<seq>.txt; finish the run or restrict --sequences")
    return {n: read_result_file(p) for n, p in paths.items()}
