"""`ckd calibrate`: thermal -> RGB homography from hand-picked point correspondences, or from two
camera_info YAML files plus the extrinsic transform between the optical frames.

Points file: CSV/whitespace text with rows `thermal_x, thermal_y, rgb_x, rgb_y` (header rows at the
top, `#` comments, spreadsheet exports with BOM, `;` separators, decimal commas and quotes), or YAML: a list of such
4-number rows, or a mapping with `points:` / `correspondences:` holding rows or `{thermal: [x, y], rgb: [x, y]}` items.
"""
from __future__ import annotations

import csv
import pathlib
from dataclasses import dataclass
from typing import List, Optional, Sequence

import cv2
import numpy as np

from ckd_ros.errors import GeometryError
from ckd_ros.frames.textio import _is_number
from ckd_ros.tracking.camera_model import CameraModel, RigidTransform
from ckd_ros.tracking.registration import (
    Overlap,
    Registration,
    check_homography,
    estimate_homography,
    registration_from_calibration,
    thermal_overlap,
)


def _row_from_item(item, where: str) -> List[float]:
    if isinstance(item, dict):
        try:
            values = list(item["thermal"]) + list(item["rgb"])
        except (KeyError, TypeError):
            raise GeometryError(f"{where}: an item needs 'thermal: [x, y]' and 'rgb: [x, y]'") from None
    else:
        values = list(item) if isinstance(item, (list, tuple)) else [item]
    try:
        row = [float(v) for v in values]
    except (TypeError, ValueError):
        raise GeometryError(f"{where}: not numbers: {item!r}") from None
    if len(row) != 4:
        raise GeometryError(f"{where}: expected 4 numbers (thermal_x, thermal_y, rgb_x, rgb_y), got {len(row)}")
    return row


def _decode_text(path: pathlib.Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM (spreadsheet "Unicode text"), else Latin-1."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GeometryError(f"cannot read points file {path}: {exc.strerror or exc}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def split_fields(line: str) -> List[str]:
    """One text/CSV line -> its fields, as spreadsheets export them.

    Separator: `;` or tab when present, else commas and/or blanks; fields may be quoted (CSV rules)
    and use a decimal comma (`"12,5"` or `12,5` between semicolons = 12.5); empty trailing fields
    (spreadsheet padding) are dropped.
    """
    delimiter = ";" if ";" in line else "\t" if "\t" in line else ","
    fields = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))
    if delimiter == ",":  # blanks separate too, outside quotes
        fields = [part for f in fields for part in (f.split() if f.strip() else [""])]
    fields = [f.strip().replace(",", ".") for f in fields]
    while fields and not fields[-1]:
        fields.pop()
    return fields


def load_correspondences(path: pathlib.Path) -> np.ndarray:
    """(N, 4) float64 array of thermal_x, thermal_y, rgb_x, rgb_y (pixels) from a points file.

    Text/CSV as saved by hand or by a spreadsheet (see `split_fields`: header rows before the data,
    `#` comments, BOM, `;`/tab separators with decimal commas, quoted fields); or YAML. Anything else
    is refused with a GeometryError naming the line.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise GeometryError(f"points file {path} does not exist")
    text = _decode_text(path)
    rows: List[List[float]] = []
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise GeometryError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
        if isinstance(data, dict):
            data = data.get("points", data.get("correspondences"))
        if not isinstance(data, list):
            raise GeometryError(f"{path}: expected a list of [thermal_x, thermal_y, rgb_x, rgb_y] rows "
                                "(at the top level or under 'points:')")
        rows = [_row_from_item(item, f"{path} item {i + 1}") for i, item in enumerate(data)]
    else:
        header_lines = 0
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = split_fields(line)
            try:
                values = [float(f) for f in fields]
            except ValueError:
                header_lines += 1
                if rows or header_lines > 3 or _is_number(fields[0] if fields else ""):  # not a header
                    raise GeometryError(f"{path}:{lineno}: not numbers: {line[:60]!r}; expected rows "
                                        "thermal_x, thermal_y, rgb_x, rgb_y (header rows only at the top)") from None
                continue
            if len(values) != 4:
                raise GeometryError(f"{path}:{lineno}: expected 4 numbers (thermal_x, thermal_y, rgb_x, rgb_y), "
                                    f"got {len(values)}: {line[:60]!r}")
            if not all(np.isfinite(values)):
                raise GeometryError(f"{path}:{lineno}: NaN/inf in {line[:60]!r}; remove or fix the row")
            rows.append(values)
    if len(rows) < 4:
        raise GeometryError(f"{path}: {len(rows)} correspondences; a homography needs at least 4 "
                            "(rows thermal_x, thermal_y, rgb_x, rgb_y; 8+ well spread points recommended)")
    return np.asarray(rows, dtype=np.float64)


@dataclass
class Calibration:
    """A thermal -> RGB homography with the evidence for it.

    homography: 3x3 float64 (thermal pixels -> RGB pixels, H[2,2] = 1); inliers (N,) bool and
    errors (N,) px: per point pair (empty without points); overlap: `registration.Overlap` when the
    image sizes are known; source: how it was obtained; fit_error_px: largest distance between the
    homography and the exact calibrated mapping (camera_info with distortion), else None.
    """

    homography: np.ndarray
    inliers: np.ndarray
    errors: np.ndarray
    overlap: Optional[Overlap] = None
    source: str = "point correspondences"
    fit_error_px: Optional[float] = None

    def report(self) -> str:
        lines = [f"homography from {self.source}"]
        n, k = len(self.errors), int(self.inliers.sum())
        if n:
            err_in = self.errors[self.inliers]
            lines += [
                f"correspondences: {n} ({k} inliers, {n - k} outliers rejected by RANSAC)",
                f"reprojection error (inliers): mean {err_in.mean():.3f} px, max {err_in.max():.3f} px",
                f"reprojection error (all):     mean {self.errors.mean():.3f} px, max {self.errors.max():.3f} px",
            ]
            if n > k:
                rows = ", ".join(str(i + 1) for i in np.flatnonzero(~self.inliers))
                lines.append(f"outlier rows (1-based, data rows only): {rows}")
            if k == 4 and self.source == "point correspondences":
                lines.append("note: 4 points always fit exactly (error 0 by construction); add points to measure it")
        if self.fit_error_px is not None:
            lines.append(f"homography vs exact calibrated mapping (distortion): max {self.fit_error_px:.3f} px")
            if self.fit_error_px > 1.0:
                lines.append("note: lens distortion bends the mapping; for an exact registration track rectified "
                             "images (image_proc) with their camera_info (D = 0)")
        lines.append(self.overlap_line())
        lines.append("paste into the node's parameters YAML:")
        lines.append(self.yaml_snippet())
        return "\n".join(lines)

    def overlap_line(self) -> str:
        if self.overlap is None:
            return ("thermal coverage of the RGB frame: unknown (give --thermal-size WxH --rgb-size WxH "
                    "or camera_info files)")
        line = f"thermal coverage of the RGB frame: {100 * self.overlap.frame:.1f}%"
        warning = self.overlap.warning()
        return line + (f"\nwarning: {warning}" if warning else "")

    def yaml_snippet(self) -> str:
        values = ", ".join(f"{v:.10g}" for v in self.homography.reshape(-1))
        return f"registration:\n  homography: [{values}]"


def _overlap(mat: np.ndarray, thermal_wh, rgb_wh) -> Optional[Overlap]:
    if thermal_wh is None or rgb_wh is None:
        return None
    return thermal_overlap(Registration(mat), thermal_wh, rgb_wh)


def calibrate(points: np.ndarray, ransac_threshold: float = 3.0, thermal_wh: Optional[Sequence[int]] = None,
              rgb_wh: Optional[Sequence[int]] = None) -> Calibration:
    """Homography from (N, 4) point pairs (`load_correspondences`); GeometryError when untrustworthy."""
    mat, inliers, errors = estimate_homography(points[:, :2], points[:, 2:], ransac_threshold)
    return Calibration(mat, inliers, errors, _overlap(mat, thermal_wh, rgb_wh))


def calibrate_from_camera_info(rgb_info, thermal_info, extrinsic, depth_m: Optional[float] = None,
                               points: Optional[np.ndarray] = None) -> Calibration:
    """Homography from two camera_info YAML files (camera_calibration_parsers format) and the transform
    thermal optical frame -> RGB optical frame (`RigidTransform.parse`: 'x y z qx qy qz qw' or 4x4).

    With `points` (N, 4), the reprojection error of that homography on them is reported (all count
    as inliers). Source: `registration.registration_from_calibration`.
    """
    rgb = rgb_info if isinstance(rgb_info, CameraModel) else CameraModel.from_yaml(rgb_info)
    tir = thermal_info if isinstance(thermal_info, CameraModel) else CameraModel.from_yaml(thermal_info)
    transform = extrinsic if isinstance(extrinsic, RigidTransform) else RigidTransform.parse(extrinsic)
    reg, fit = registration_from_calibration(rgb, tir, transform, depth_m)
    mat = reg.matrix
    corners = np.array([[0.0, 0.0], [tir.width, 0.0], [0.0, tir.height], [tir.width, tir.height]])
    check_homography(mat, corners, cv2.perspectiveTransform(corners.reshape(-1, 1, 2), mat).reshape(-1, 2))
    if points is not None:
        proj = cv2.perspectiveTransform(points[:, :2].reshape(-1, 1, 2), mat).reshape(-1, 2)
        errors = np.linalg.norm(proj - points[:, 2:], axis=1)
    else:
        errors = np.zeros(0)
    depth = "infinity" if not depth_m else f"{depth_m:g} m"
    return Calibration(mat, np.ones(len(errors), dtype=bool), errors,
                       _overlap(mat, (tir.width, tir.height), (rgb.width, rgb.height)),
                       f"camera_info + extrinsic transform (plane at {depth})",
                       None if rgb.is_pinhole and tir.is_pinhole else fit)
