"""RGB <-> thermal registration by a planar homography (thermal pixels -> RGB pixels).

CKD assumes pixel-registered, equal-size frames (one box crops both). Rigs that are not
registered in hardware warp the thermal frame into the RGB frame before cropping; pre-registered
rigs use the identity, which costs nothing (the same array object comes back).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ckd_ros.errors import GeometryError
from ckd_ros.tracking.preprocess import crop_window

HomographyLike = Union[np.ndarray, Sequence[float], Sequence[Sequence[float]], None]


def _as_matrix(homography: HomographyLike) -> np.ndarray:
    if homography is None:
        return np.eye(3)
    try:
        mat = np.asarray(homography, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"registration.homography must be 9 numbers or a 3x3 matrix: {exc}") from None
    if mat.size != 9:
        raise ValueError(
            f"registration.homography must have 9 values (3x3, row-major), got {mat.size}; "
            "use `ckd calibrate` to estimate one, or the identity [1,0,0, 0,1,0, 0,0,1]"
        )
    mat = mat.reshape(3, 3)
    if not np.all(np.isfinite(mat)):
        raise ValueError("registration.homography contains NaN or inf")
    if abs(mat[2, 2]) < 1e-12:
        raise ValueError("registration.homography has H[2][2] = 0; it cannot be normalised")
    mat = mat / mat[2, 2]
    if abs(np.linalg.det(mat)) < 1e-12:
        raise ValueError("registration.homography is singular (determinant 0); it maps the image to a line")
    return mat


def _map_box(mat: np.ndarray, box_xywh: Sequence[float]) -> np.ndarray:
    x, y, w, h = (float(v) for v in box_xywh)
    corners = np.array([[[x, y]], [[x + w, y]], [[x, y + h]], [[x + w, y + h]]], dtype=np.float64)
    mapped = cv2.perspectiveTransform(corners, mat).reshape(4, 2)
    lo, hi = mapped.min(axis=0), mapped.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float64)


class Registration:
    """Homography H (3x3) mapping thermal pixel coordinates to RGB pixel coordinates."""

    def __init__(self, homography: HomographyLike = None, identity_tol: float = 1e-9) -> None:
        self.matrix = _as_matrix(homography)
        self.inverse = np.linalg.inv(self.matrix)
        self.is_identity = bool(np.allclose(self.matrix, np.eye(3), rtol=0.0, atol=identity_tol))

    @classmethod
    def identity(cls) -> Registration:
        return cls(None)

    def as_list(self) -> list:
        """The 9 floats (row-major) as they go into `registration.homography`."""
        return [float(v) for v in self.matrix.reshape(-1)]

    def warp_thermal(self, tir: np.ndarray, rgb_shape: Sequence[int]) -> np.ndarray:
        """Warp a thermal frame into the RGB frame (HxW of `rgb_shape`); identity: returns `tir` itself."""
        if self.is_identity:
            return tir
        height, width = int(rgb_shape[0]), int(rgb_shape[1])
        return cv2.warpPerspective(
            tir, self.matrix, (width, height), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )

    def sample_thermal(self, tir: np.ndarray, box_xywh: Sequence[float], factor: float,
                       output_sz: int) -> np.ndarray:
        """The crop `sample_target(warp_thermal(tir), box, factor, output_sz)` would give, in one warp.

        Box and crop window are in RGB pixels (same rounding as the RGB crop); each output pixel is
        mapped through the resize geometry and H^-1 straight into the thermal frame, so only
        output_sz^2 pixels are interpolated instead of warping the whole frame first (7 ms at 1080p).
        Outside the thermal frame: zeros, like the crop padding.
        """
        x1, y1, crop_sz = crop_window(box_xywh, factor)
        s = crop_sz / output_sz
        # cv2.resize INTER_LINEAR geometry: src = (dst + 0.5) * s - 0.5, offset by the crop origin
        to_rgb = np.array([[s, 0.0, x1 + 0.5 * s - 0.5], [0.0, s, y1 + 0.5 * s - 0.5], [0.0, 0.0, 1.0]])
        return cv2.warpPerspective(
            tir, self.inverse @ to_rgb, (output_sz, output_sz),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )

    def box_thermal_to_rgb(self, box_xywh: Sequence[float]) -> np.ndarray:
        """Axis-aligned bounding box of the 4 mapped corners (thermal pixels -> RGB pixels)."""
        if self.is_identity:
            return np.asarray(box_xywh, dtype=np.float64).copy()
        return _map_box(self.matrix, box_xywh)

    def box_rgb_to_thermal(self, box_xywh: Sequence[float]) -> np.ndarray:
        """Axis-aligned bounding box of the 4 mapped corners (RGB pixels -> thermal pixels)."""
        if self.is_identity:
            return np.asarray(box_xywh, dtype=np.float64).copy()
        return _map_box(self.inverse, box_xywh)

    def __repr__(self) -> str:
        return "Registration(identity)" if self.is_identity else f"Registration({self.as_list()})"


# ---- estimation from point correspondences ------------------------------------------------------
MIN_GENERAL_POSITION = 1e-4  # smallest non-null / largest singular value of the normalised DLT system
MIN_SPREAD = 1e-3  # minor / major axis of a point set (Hartley-normalised): below = (nearly) collinear
MAX_CONDITION = 1e7  # condition number of H between Hartley-normalised frames


def _hartley(pts: np.ndarray) -> np.ndarray:
    """3x3 similarity moving the centroid to 0 and the mean distance to sqrt(2) (Hartley & Zisserman,
    Multiple View Geometry, 2nd ed., sec. 4.4.4)."""
    centre = pts.mean(axis=0)
    dist = np.linalg.norm(pts - centre, axis=1).mean()
    s = np.sqrt(2.0) / dist if dist > 0 else 1.0
    return np.array([[s, 0.0, -s * centre[0]], [0.0, s, -s * centre[1]], [0.0, 0.0, 1.0]])


def _apply(mat: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ mat.T
    return p[:, :2] / p[:, 2:3]


def check_correspondences(src: np.ndarray, dst: np.ndarray, what: str = "points") -> None:
    """GeometryError unless (N, 2) `src` -> `dst` determine a homography: >= 4 finite, distinct points,
    not (nearly) collinear in either image, with 4 of them in general position (rank 8 of the
    Hartley-normalised DLT system, H&Z sec. 4.1 / 4.4). Thresholds: MIN_SPREAD, MIN_GENERAL_POSITION."""
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    add = "give at least 4 (8+ recommended) point pairs spread over the whole image, no 3 on one line"
    if len(src) != len(dst):
        raise GeometryError(f"{len(src)} thermal points but {len(dst)} RGB points")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise GeometryError(f"{what} contain NaN or inf; {add}")
    if len(src) < 4:
        raise GeometryError(f"a homography needs at least 4 point correspondences, got {len(src)}; {add}")
    for name, pts in (("thermal", src), ("RGB", dst)):
        distinct = len(np.unique(np.round(pts, 6), axis=0))
        if distinct < 4:
            raise GeometryError(f"only {distinct} distinct {name} points among {len(pts)} rows (duplicates); {add}")
        norm = _apply(_hartley(pts), pts)
        sv = np.linalg.svd(norm - norm.mean(axis=0), compute_uv=False)
        if sv[1] < MIN_SPREAD * sv[0]:
            raise GeometryError(f"the {name} points lie on one line (spread ratio {sv[1] / sv[0]:.1e}); "
                                "a line does not determine a homography: " + add)
    a_src, a_dst = _apply(_hartley(src), src), _apply(_hartley(dst), dst)
    rows = []
    for (x, y), (u, v) in zip(a_src, a_dst):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    sv = np.linalg.svd(np.asarray(rows), compute_uv=False)
    if len(sv) < 8 or sv[7] < MIN_GENERAL_POSITION * sv[0]:
        ratio = sv[7] / sv[0] if len(sv) >= 8 else 0.0
        raise GeometryError(f"the {what} are degenerate (3 of every 4 on one line; DLT conditioning "
                            f"{ratio:.1e}): many homographies fit them equally well; {add}")


def check_homography(mat: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    """GeometryError unless H (3x3, thermal -> RGB) is finite, invertible, well conditioned between the
    Hartley-normalised point frames (MAX_CONDITION) and keeps every point in front (w > 0, no fold)."""
    hint = "check the point pairs (thermal x y first, then RGB x y) and spread them over the image"
    if mat is None or not np.all(np.isfinite(mat)):
        raise GeometryError(f"the estimated homography is not finite; {hint}")
    if abs(mat[2, 2]) < 1e-12 * np.abs(mat).max():
        raise GeometryError(f"the estimated homography has H[2][2] = 0 (it maps the image to infinity); {hint}")
    norm = _hartley(dst) @ (mat / mat[2, 2]) @ np.linalg.inv(_hartley(src))
    cond = np.linalg.cond(norm)
    if not np.isfinite(cond) or cond > MAX_CONDITION:
        raise GeometryError(f"the estimated homography is (nearly) singular (condition number {cond:.1e}); {hint}")
    w = np.concatenate([src, np.ones((len(src), 1))], axis=1) @ (mat / mat[2, 2])[2]
    if not (np.all(w > 0) or np.all(w < 0)):
        raise GeometryError(f"the estimated homography folds the image (the horizon line crosses the points); {hint}")


def estimate_homography(
    thermal_pts: Iterable[Sequence[float]],
    rgb_pts: Iterable[Sequence[float]],
    ransac_threshold: float = 3.0,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Homography thermal -> RGB from >= 4 correspondences (cv2.findHomography, RANSAC when N > 4).

    Returns (H 3x3 float64 normalised to H[2,2]=1, inlier mask (N,) bool, reprojection error (N,) px).
    Raises GeometryError for degenerate input (too few, duplicated, collinear points; see
    `check_correspondences`) or an untrustworthy result (`check_homography`), checked on all points
    and again on the RANSAC inliers.
    """
    src = np.asarray(list(thermal_pts), dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(list(rgb_pts), dtype=np.float64).reshape(-1, 2)
    check_correspondences(src, dst)
    method = cv2.RANSAC if len(src) > 4 else 0  # RANSAC needs spare points to reject anything
    mat, mask = cv2.findHomography(src, dst, method, ransac_threshold)
    inliers = np.ones(len(src), dtype=bool) if mask is None else mask.reshape(-1).astype(bool)
    if mat is not None and inliers.sum() >= 4:
        check_correspondences(src[inliers], dst[inliers], "RANSAC inliers")
    check_homography(mat, src[inliers], dst[inliers])
    mat = mat / mat[2, 2]
    proj = cv2.perspectiveTransform(src.reshape(-1, 1, 2), mat).reshape(-1, 2)
    errors = np.linalg.norm(proj - dst, axis=1)
    return mat, inliers, errors


# ---- registration from camera calibration (camera_info + TF) -------------------------------------
def homography_from_calibration(rgb, thermal, transform, depth_m: Optional[float] = None) -> np.ndarray:
    """Pinhole thermal -> RGB homography (3x3, H[2,2] = 1) for the plane Z_thermal = depth_m.

    rgb, thermal: `camera_model.CameraModel` (their K; distortion is handled by
    `registration_from_calibration`); transform: `camera_model.RigidTransform` thermal optical frame ->
    RGB optical frame (p_rgb = R p_thermal + t, metres; tf2 lookup_transform(rgb_frame, thermal_frame));
    depth_m: distance of the plane perpendicular to the thermal optical axis (n = (0, 0, 1) in the
    thermal frame); None / 0 / inf = plane at infinity.

    H = K_rgb (R + t n^T / d) K_thermal^-1 (Hartley & Zisserman, sec. 13.1, eq. 13.2; the same as
    their K' (R - t n^T / d) K^-1 written for the plane n^T X + d = 0). At infinity H = K_rgb R K_thermal^-1.
    """
    A = plane_map(transform, depth_m)
    mat = rgb.K @ A @ np.linalg.inv(thermal.K)
    return mat / mat[2, 2]


def plane_map(transform, depth_m: Optional[float]) -> np.ndarray:
    """3x3 A with A (x, y, 1)^T ~ the RGB-frame direction of the thermal ray (x, y, 1) hitting the plane."""
    if depth_m is not None and not (depth_m >= 0):
            raise GeometryError(f"registration depth {depth_m} m must be > 0 (or 0 / inf for infinity)")
    if depth_m is None or depth_m == 0 or not np.isfinite(depth_m):
        return np.asarray(transform.R, dtype=np.float64)
    return transform.R + np.outer(transform.t, [0.0, 0.0, 1.0]) / float(depth_m)


def registration_from_calibration(rgb, thermal, transform, depth_m: Optional[float] = None,
                                  grid: int = 24) -> Tuple[Registration, float]:
    """(Registration, fit error px): the thermal -> RGB homography of the raw images, and how far it is
    from the exact mapping anywhere on a `grid` x `grid` lattice over the thermal image.

    Both pinhole: the homography is exact (error 0). With distortion the exact mapping (undistort
    thermal pixel -> ray -> plane -> RGB camera -> distort) is not a homography; the least-squares
    homography over the lattice (cv2.findHomography, method 0) is returned with its largest residual.
    Raises GeometryError when the cameras do not see the plane in common.
    """
    pinhole = homography_from_calibration(rgb, thermal, transform, depth_m)
    if rgb.is_pinhole and thermal.is_pinhole:
        try:
            return Registration(pinhole), 0.0
        except ValueError as exc:  # singular: the plane passes through the RGB camera's centre
            raise GeometryError(f"calibrated homography unusable ({exc}); check registration depth and transform") \
                from None
    us = np.linspace(0.0, thermal.width - 1.0, grid)
    vs = np.linspace(0.0, thermal.height - 1.0, grid)
    q = np.stack(np.meshgrid(us, vs), axis=-1).reshape(-1, 2)
    p = exact_mapping(rgb, thermal, transform, depth_m, q)
    ok = np.all(np.isfinite(p), axis=1)
    if ok.sum() < 8:
        raise GeometryError("the thermal image does not map into the RGB camera with this camera_info / "
                            "transform (check the TF direction: thermal optical frame -> RGB optical frame)")
    mat, _ = cv2.findHomography(q[ok], p[ok], 0)
    if mat is None or not np.all(np.isfinite(mat)):
        raise GeometryError("no homography fits the calibrated mapping; check camera_info and the transform")
    mat = mat / mat[2, 2]
    if abs(np.linalg.det(mat)) < 1e-12:
        raise GeometryError("the calibrated homography is singular; check the registration depth and the transform")
    err = np.linalg.norm(cv2.perspectiveTransform(q[ok].reshape(-1, 1, 2), mat).reshape(-1, 2) - p[ok], axis=1)
    return Registration(mat), float(err.max())


def exact_mapping(rgb, thermal, transform, depth_m: Optional[float], thermal_px: np.ndarray) -> np.ndarray:
    """(N, 2) raw thermal pixels -> (N, 2) raw RGB pixels through both camera models (NaN: not visible)."""
    rays = thermal.pixels_to_rays(thermal_px)
    with np.errstate(invalid="ignore", divide="ignore"):
        rays = rays / rays[:, 2:3]  # on the plane z = 1 of the thermal frame
        rays[~(np.isfinite(rays).all(axis=1))] = np.nan
        return rgb.rays_to_pixels(rays @ plane_map(transform, depth_m).T)


# ---- overlap of the registered thermal frame with the RGB frame ------------------------------------
MIN_COVERAGE = 0.5  # WARN when the mapped thermal frame covers less of the RGB frame (or of the box)


@dataclass
class Overlap:
    """Fractions (0..1) of the RGB frame, and of a box, that the mapped thermal frame covers."""

    frame: float
    box: Optional[float] = None

    def warning(self, threshold: float = MIN_COVERAGE) -> Optional[str]:
        """One line when the thermal half of the tracker would be (partly) blind, else None."""
        parts = []
        if self.frame < threshold:
            parts.append(f"the registered thermal frame covers {100 * self.frame:.0f}% of the RGB frame")
        if self.box is not None and self.box < threshold:
            parts.append(f"{100 * self.box:.0f}% of the target box")
        if not parts:
            return None
        return (" and ".join(parts) + f" (below {100 * threshold:.0f}%): thermal crops are black there; check the "
                "homography's direction (thermal -> RGB) and units (`ckd calibrate`)")

    def as_dict(self) -> dict:
        """{'thermal_coverage': frame[, 'thermal_box_coverage': box]} rounded to 3 decimals (summary lines)."""
        out = {"thermal_coverage": round(self.frame, 3)}
        if self.box is not None:
            out["thermal_box_coverage"] = round(self.box, 3)
        return out


def thermal_overlap(registration: Registration, thermal_wh: Sequence[int], rgb_wh: Sequence[int],
                    box_xywh: Optional[Sequence[float]] = None, samples: int = 64) -> Overlap:
    """The one overlap measure (ckd track, ckd calibrate, node diagnostics).

    Each of `samples` x `samples` pixel centres of the RGB frame (and of `box_xywh`, RGB pixels) is
    mapped through H^-1 into the thermal image (W x H = `thermal_wh`); covered = lands inside it
    in front of the camera (w > 0). Robust to any H (inverted, mirrored, horizon inside the frame).
    """
    def covered(x0: float, y0: float, w: float, h: float) -> float:
        if w <= 0 or h <= 0:
            return 0.0
        xs = x0 + (np.arange(samples) + 0.5) * (w / samples)
        ys = y0 + (np.arange(samples) + 0.5) * (h / samples)
        pts = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ registration.inverse.T
        w_ = hom[:, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            u, v = hom[:, 0] / w_, hom[:, 1] / w_
        tw, th = float(thermal_wh[0]), float(thermal_wh[1])
        inside = (w_ > 0) & (u >= -0.5) & (u <= tw - 0.5) & (v >= -0.5) & (v <= th - 0.5)
        return float(inside.mean())

    rw, rh = float(rgb_wh[0]), float(rgb_wh[1])
    frame = covered(-0.5, -0.5, rw, rh)
    box = None if box_xywh is None else covered(*(float(v) for v in box_xywh))
    return Overlap(frame, box)


def check_registered_shapes(rgb_shape: Sequence[int], tir_shape: Sequence[int],
                            registration: Optional[Registration]) -> None:
    """ValueError when RGB and (registered) thermal frames differ in HxW."""
    if tuple(rgb_shape[:2]) != tuple(tir_shape[:2]):
        hint = ("set registration.homography (thermal -> RGB, `ckd calibrate`) so the thermal frame is "
                "warped into the RGB frame" if registration is None or registration.is_identity
                else "the registration output should have the RGB size; this is a bug")
        raise ValueError(
            f"RGB frame is {rgb_shape[1]}x{rgb_shape[0]} but thermal frame is {tir_shape[1]}x{tir_shape[0]} "
            f"(W x H); CKD crops both with one box, so they must be the same size: {hint}"
        )
