"""Read the numeric text files of RGB-T benchmarks (ground truth and tracker results).

One reader for every layout found in the wild: values separated by commas, spaces or tabs in any mix,
LF or CRLF line ends, blank lines anywhere, a missing final newline, `%.18e` mixed with plain decimals,
and `NaN` entries (what MATLAB's dlmread/textscan accept).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List

import numpy as np

from ckd_ros.errors import CKDError

_SEP = re.compile(r"[,\s]+")


def _fields(line: str) -> List[str]:
    # strip() first so a trailing comma or CR does not create an empty field
    return [f for f in _SEP.split(line.strip(" \t\r\n,")) if f]


def read_matrix(path: Path, what: str = "file") -> np.ndarray:
    """Return an (N, C) float64 array; every non-blank line must hold the same number C of values.

    An empty file gives a (0, 0) array: callers decide whether that is an error.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise CKDError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    text = text.lstrip("\ufeff")
    lines = [ln for ln in text.splitlines() if ln.strip(" \t\r\n,")]
    if not lines:
        return np.zeros((0, 0))
    ncols = len(_fields(lines[0]))
    # Fast path: one C-level split of the whole text; the per-line check runs only if counts disagree.
    tokens = _SEP.split(text.replace("\ufeff", "").strip(" \t\r\n,"))
    tokens = [t for t in tokens if t]
    if len(tokens) != ncols * len(lines):
        _raise_ragged(path, lines, ncols, what)
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        _raise_bad_number(path, lines, what)
    return values.reshape(len(lines), ncols)


def _raise_ragged(path: Path, lines: List[str], ncols: int, what: str) -> None:
    for number, line in enumerate(lines, start=1):
        n = len(_fields(line))
        if n != ncols:
            raise CKDError(f"{what} {path}: non-blank line {number} has {n} values but the first has {ncols} "
                           f"({line.strip()[:60]!r}); every line must hold the same box format")
    raise CKDError(f"{what} {path}: could not split the lines into {ncols} values each; "
                   "separate values with commas, spaces or tabs")


def _raise_bad_number(path: Path, lines: List[str], what: str) -> None:
    for number, line in enumerate(lines, start=1):
        for field in _fields(line):
            try:
                float(field)
            except ValueError:
                raise CKDError(f"{what} {path}: non-blank line {number} has a value that is not a number: "
                               f"{field!r}; expected numbers separated by commas, spaces or tabs") from None
    raise CKDError(f"{what} {path}: unreadable numbers")


def read_names(path: Path) -> List[str]:
    """A sequence-list file: one name per line, taken verbatim (apostrophes included); CR and blanks dropped."""
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    except OSError as exc:
        raise CKDError(f"cannot read sequence list {path}: {exc.strerror or exc}") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]
