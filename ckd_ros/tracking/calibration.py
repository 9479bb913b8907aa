"""`ckd calibrate`: thermal -> RGB homography from hand-picked point correspondences.

Points file: CSV/whitespace text with rows `thermal_x, thermal_y, rgb_x, rgb_y` (a header line and
`#` comments are skipped), or YAML: a list of such 4-number rows, or a mapping with `points:` /
`correspondences:` holding rows or `{thermal: [x, y], rgb: [x, y]}` items.
"""
from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass
from typing import List

import numpy as np

from ckd_ros.errors import CKDError
from ckd_ros.tracking.registration import estimate_homography


def _row_from_item(item, where: str) -> List[float]:
    if isinstance(item, dict):
        try:
            values = list(item["thermal"]) + list(item["rgb"])
        except (KeyError, TypeError):
            raise CKDError(f"{where}: an item needs 'thermal: [x, y]' and 'rgb: [x, y]'") from None
    else:
        values = list(item) if isinstance(item, (list, tuple)) else [item]
    try:
        row = [float(v) for v in values]
    except (TypeError, ValueError):
        raise CKDError(f"{where}: not numbers: {item!r}") from None
    if len(row) != 4:
        raise CKDError(f"{where}: expected 4 numbers (thermal_x, thermal_y, rgb_x, rgb_y), got {len(row)}")
    return row


def load_correspondences(path: pathlib.Path) -> np.ndarray:
    """(N, 4) float64 array of thermal_x, thermal_y, rgb_x, rgb_y."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CKDError(f"points file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    rows: List[List[float]] = []
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CKDError(f"{path} is not valid YAML: {exc}") from None
        if isinstance(data, dict):
            data = data.get("points", data.get("correspondences"))
        if not isinstance(data, list):
            raise CKDError(f"{path}: expected a list of [thermal_x, thermal_y, rgb_x, rgb_y] rows "
                           "(at the top level or under 'points:')")
        rows = [_row_from_item(item, f"{path} item {i + 1}") for i, item in enumerate(data)]
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = [f for f in re.split(r"[,;\s]+", line) if f]
            try:
                rows.append(_row_from_item([float(f) for f in fields], f"{path}:{lineno}"))
            except ValueError:
                if rows:  # text after data: a real error, not a header
                    raise CKDError(f"{path}:{lineno}: not numbers: {line!r}") from None
    if len(rows) < 4:
        raise CKDError(f"{path}: {len(rows)} correspondences; a homography needs at least 4 "
                       "(rows thermal_x, thermal_y, rgb_x, rgb_y; 8+ well spread points recommended)")
    return np.asarray(rows, dtype=np.float64)


@dataclass
class Calibration:
    homography: np.ndarray  # 3x3, thermal -> RGB
    inliers: np.ndarray  # (N,) bool
    errors: np.ndarray  # (N,) px

    def report(self) -> str:
        n, k = len(self.errors), int(self.inliers.sum())
        err_in = self.errors[self.inliers]
        lines = [
            f"correspondences: {n} ({k} inliers, {n - k} outliers rejected by RANSAC)",
            f"reprojection error (inliers): mean {err_in.mean():.3f} px, max {err_in.max():.3f} px",
            f"reprojection error (all):     mean {self.errors.mean():.3f} px, max {self.errors.max():.3f} px",
        ]
        if n > k:
            rows = ", ".join(str(i + 1) for i in np.flatnonzero(~self.inliers))
            lines.append(f"outlier rows (1-based, data rows only): {rows}")
        lines.append("paste into the node's parameters YAML:")
        lines.append(self.yaml_snippet())
        return "\n".join(lines)

    def yaml_snippet(self) -> str:
        values = ", ".join(f"{v:.10g}" for v in self.homography.reshape(-1))
        return f"registration:\n  homography: [{values}]"


def calibrate(points: np.ndarray, ransac_threshold: float = 3.0) -> Calibration:
    try:
        mat, inliers, errors = estimate_homography(points[:, :2], points[:, 2:], ransac_threshold)
    except ValueError as exc:
        raise CKDError(f"cannot estimate the homography: {exc}") from None
    return Calibration(mat, inliers, errors)
