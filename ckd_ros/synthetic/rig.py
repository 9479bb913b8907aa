"""The synthetic two-camera rig: where the thermal camera sits relative to the RGB camera.

The scene is rendered aligned (thermal pixel = RGB pixel); a real rig is not. `thermal_view`
re-projects the aligned thermal image into a thermal camera offset by a homography, so the
tracker's `registration.homography` (thermal pixels -> RGB pixels) has something to undo.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np


def rig_homography(offset: Sequence[float] = (0.0, 0.0), homography: Optional[Sequence[float]] = None) -> np.ndarray:
    """3x3 thermal -> RGB homography. `offset` (dx, dy): a point at RGB pixel p appears at thermal
    pixel p + (dx, dy). A 9-float `homography` (thermal -> RGB) overrides the offset; anything
    shorter (the node's placeholder [0.0]) means "use the offset"."""
    if homography is not None and len(homography) == 9:
        mat = np.asarray(homography, np.float64).reshape(3, 3)
        if not np.all(np.isfinite(mat)) or abs(np.linalg.det(mat)) < 1e-12 or mat[2, 2] == 0:
            raise ValueError(f"thermal homography {list(homography)} is not an invertible 3x3 matrix")
        return mat / mat[2, 2]
    dx, dy = (float(v) for v in offset)
    return np.array([[1, 0, -dx], [0, 1, -dy], [0, 0, 1]], np.float64)


def is_identity(mat: np.ndarray) -> bool:
    return bool(np.allclose(mat, np.eye(3), atol=1e-9))


def thermal_view(aligned: np.ndarray, thermal_to_rgb: np.ndarray) -> np.ndarray:
    """The thermal camera's image: thermal(q) = aligned(H q), H = thermal -> RGB.

    Border pixels are replicated (a black border would be 0 K and wreck min-max normalisation).
    """
    if is_identity(thermal_to_rgb):
        return aligned
    h, w = aligned.shape[:2]
    return cv2.warpPerspective(aligned, thermal_to_rgb, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)


def map_box(box: Sequence[float], mat: np.ndarray) -> np.ndarray:
    """Axis-aligned box (x, y, w, h) through a homography: the bounding box of its mapped corners."""
    x, y, w, h = (float(v) for v in box)
    pts = np.array([[[x, y]], [[x + w, y]], [[x, y + h]], [[x + w, y + h]]], np.float64)
    out = cv2.perspectiveTransform(pts, mat).reshape(-1, 2)
    x0, y0 = out.min(axis=0)
    x1, y1 = out.max(axis=0)
    return np.array([x0, y0, x1 - x0, y1 - y0], np.float32)


def rig_intrinsics(width: int, height: int, thermal_to_rgb: np.ndarray,
                   hfov_deg: float = 60.0) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(K_rgb, K_thermal) 3x3 pinhole matrices of the rig's two cameras, co-located (no baseline, no
    rotation), so K_rgb K_thermal^-1 = `thermal_to_rgb` at any depth (H&Z sec. 13.1 with R = I, t = 0).

    K_rgb: square pixels, principal point at the image centre, horizontal field of view `hfov_deg`.
    K_thermal = H^-1 K_rgb, a camera matrix only when H is upper triangular (offsets, scales); else
    None (the rig cannot be described by camera_info + TF).
    """
    f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2.0)
    k_rgb = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    k_tir = np.linalg.inv(np.asarray(thermal_to_rgb, np.float64)) @ k_rgb
    k_tir = k_tir / k_tir[2, 2]
    if abs(k_tir[1, 0]) > 1e-12 or abs(k_tir[2, 0]) > 1e-12 or abs(k_tir[2, 1]) > 1e-12 \
            or k_tir[0, 0] <= 0 or k_tir[1, 1] <= 0:
        return k_rgb, None
    k_tir[1, 0] = k_tir[2, 0] = k_tir[2, 1] = 0.0
    return k_rgb, k_tir
