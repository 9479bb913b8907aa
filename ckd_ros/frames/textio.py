"""Read the numeric text files of RGB-T benchmarks (ground truth and tracker results).

One reader for every layout found in the wild: values separated by commas, spaces or tabs in any mix,
LF or CRLF line ends, blank lines anywhere, a missing final newline, `%.18e` mixed with plain decimals,
and `NaN` entries (what MATLAB's dlmread/textscan accept).
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from ckd_ros.errors import CKDError


def _decode(path: Path, what: str) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    except OSError as exc:
        raise CKDError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def read_matrix(path: Path, what: str = "file") -> np.ndarray:
    """Return an (N, C) float64 array; every non-blank line must hold the same number C of values.

    An empty file gives a (0, 0) array: callers decide whether that is an error.
    """
    path = Path(path)
    text = _decode(path, what).replace(",", " ")  # commas become blanks; split() eats any run of them
    rows = [fields for fields in (line.split() for line in text.splitlines()) if fields]
    if not rows:
        return np.zeros((0, 0))
    ncols = len(rows[0])
    for number, fields in enumerate(rows, start=1):
        if len(fields) != ncols:
            raise CKDError(f"{what} {path}: non-blank line {number} has {len(fields)} values but the first has "
                           f"{ncols} ({' '.join(fields)[:60]!r}); every line must hold the same box format")
    try:
        values = np.array(text.split(), dtype=np.float64)
    except ValueError:
        bad = next((number, f) for number, fields in enumerate(rows, start=1) for f in fields if not _is_number(f))
        raise CKDError(f"{what} {path}: non-blank line {bad[0]} has a value that is not a number: {bad[1]!r}; "
                       "expected numbers separated by commas, spaces or tabs") from None
    return values.reshape(len(rows), ncols)


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def read_names(path: Path) -> List[str]:
    """A sequence-list file: one name per line, taken verbatim (apostrophes included); CR and blanks dropped."""
    text = _decode(Path(path), "sequence list")
    return [line.strip() for line in text.splitlines() if line.strip()]
