"""Camera models from `sensor_msgs/CameraInfo`: pinhole K plus plumb_bob / rational_polynomial /
equidistant distortion, pixels <-> unit rays, and rigid transforms between optical frames.

Conventions (ROS REP 103 / REP 105, camera_info as in `sensor_msgs/CameraInfo`):

* optical frame: x right, y down, z forward (the image's `header.frame_id`, usually `*_optical_frame`);
* pixel (u, v): column, row, origin at the centre of the top-left pixel (OpenCV / camera_info `K`);
* `K` (3x3) and `D` of camera_info describe the raw (distorted) image; `R`/`P` (rectification) are
  not used: monocular cameras have R = I;
* distortion (OpenCV's models, the ones `camera_calibration` writes):
  `plumb_bob` / `rational_polynomial`: D = (k1, k2, p1, p2[, k3[, k4, k5, k6]]);
  `equidistant` (alias `fisheye`, OpenCV `cv2.fisheye`): D = (k1, k2, k3, k4), theta_d =
  theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8);
* an extrinsic `RigidTransform` (R, t) maps points of a *source* frame into a *target* frame,
  p_target = R p_source + t; it is what `tf2 lookup_transform(target, source)` returns and what
  `ros2 run tf2_ros tf2_echo target source` prints (translation x y z, rotation qx qy qz qw).

Framework-free: numpy and OpenCV only. Errors are `GeometryError` (one line, what to do).
"""
from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from ckd_ros.errors import GeometryError

PINHOLE = "pinhole"
RADTAN = ("plumb_bob", "rational_polynomial")
EQUIDISTANT = ("equidistant", "fisheye")
_NEWTON_ITERS = 50
_NEWTON_TOL = 1e-14  # normalised image units: far below 1e-6 rad


@dataclass
class CameraModel:
    """Intrinsics of one camera as camera_info gives them.

    width, height: image size (px); K: 3x3 float64; D: distortion coefficients (float64, may be empty);
    model: 'pinhole' (no distortion), 'plumb_bob', 'rational_polynomial' or 'equidistant';
    frame_id: the optical frame (REP 103: x right, y down, z forward).
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    model: str = PINHOLE
    frame_id: str = ""

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.D = np.asarray(self.D, dtype=np.float64).reshape(-1)
        model = (self.model or PINHOLE).lower()
        if model in EQUIDISTANT:
            model = "equidistant"
        where = f"camera_info{' ' + repr(self.frame_id) if self.frame_id else ''}"
        if not np.all(np.isfinite(self.K)) or not np.all(np.isfinite(self.D)):
            raise GeometryError(f"{where}: K or D holds NaN/inf; recalibrate the camera")
        fx, fy = self.K[0, 0], self.K[1, 1]
        if fx <= 0 or fy <= 0 or self.K[2, 2] != 1.0 or self.K[1, 0] or self.K[2, 0] or self.K[2, 1]:
            raise GeometryError(f"{where}: K = {self.K.reshape(-1).tolist()} is not a camera matrix "
                                "[fx, s, cx, 0, fy, cy, 0, 0, 1] with fx, fy > 0; is the camera calibrated?")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise GeometryError(f"{where}: image size {self.width}x{self.height}; width and height must be > 0")
        self.width, self.height = int(self.width), int(self.height)
        if model in RADTAN + (PINHOLE, "") and not np.any(self.D):
            model = PINHOLE  # equidistant with D = 0 is still a fisheye (theta_d = theta), not a pinhole
        elif model in RADTAN:
            if len(self.D) not in (4, 5, 8):
                raise GeometryError(f"{where}: {model} needs 4, 5 or 8 coefficients (k1 k2 p1 p2 [k3 [k4 k5 k6]]), "
                                    f"got {len(self.D)}; thin-prism/tilt models are not supported")
            self.D = np.concatenate([self.D, np.zeros(8 - len(self.D))])
        elif model == "equidistant":
            if len(self.D) != 4:
                raise GeometryError(f"{where}: equidistant needs 4 coefficients (k1 k2 k3 k4), got {len(self.D)}")
        elif model != PINHOLE:
            raise GeometryError(f"{where}: distortion_model '{self.model}' is not supported; use plumb_bob, "
                                "rational_polynomial or equidistant (or rectified images with D = 0)")
        self.model = model

    # ---- construction ------------------------------------------------------------------------------
    @classmethod
    def from_camera_info(cls, msg: Any) -> CameraModel:
        """From a sensor_msgs/CameraInfo message (duck-typed: k, d, distortion_model, width, height, header)."""
        k = list(getattr(msg, "k", None) if getattr(msg, "k", None) is not None else msg.K)
        d = list(getattr(msg, "d", None) if getattr(msg, "d", None) is not None else msg.D)
        if not any(k):
            raise GeometryError(f"camera_info of '{msg.header.frame_id}' has K = 0: the camera is not calibrated "
                                "(run camera_calibration, or use registration.mode homography)")
        return cls(int(msg.width), int(msg.height), k, d, msg.distortion_model or PINHOLE, msg.header.frame_id)

    @classmethod
    def from_dict(cls, data: Any, where: str = "camera_info") -> CameraModel:
        """From the camera_calibration_parsers YAML layout (image_width, image_height, camera_name,
        camera_matrix: {rows, cols, data}, distortion_model, distortion_coefficients: {data}, ...)."""
        if not isinstance(data, dict):
            raise GeometryError(f"{where}: expected a camera_info YAML mapping (image_width, camera_matrix, ...)")

        def matrix(key: str, n: Optional[int]) -> list:
            value = data.get(key)
            value = value.get("data") if isinstance(value, dict) else value
            if value is None:
                return []
            try:
                values = [float(v) for v in value]
            except (TypeError, ValueError):
                raise GeometryError(f"{where}: {key} is not a list of numbers") from None
            if n is not None and len(values) != n:
                raise GeometryError(f"{where}: {key} has {len(values)} values, expected {n}")
            return values

        try:
            width, height = int(data["image_width"]), int(data["image_height"])
        except (KeyError, TypeError, ValueError):
            raise GeometryError(f"{where}: image_width and image_height are required integers "
                                "(camera_calibration_parsers format)") from None
        k = matrix("camera_matrix", 9)
        if not k:
            raise GeometryError(f"{where}: camera_matrix (3x3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]) is missing")
        return cls(width, height, k, matrix("distortion_coefficients", None),
                   str(data.get("distortion_model") or PINHOLE), str(data.get("camera_name") or ""))

    @classmethod
    def from_yaml(cls, path) -> CameraModel:
        import yaml

        path = pathlib.Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise GeometryError(f"cannot read camera_info file {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise GeometryError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict:
        """camera_calibration_parsers layout (what `from_dict` reads)."""
        return {"image_width": self.width, "image_height": self.height, "camera_name": self.frame_id,
                "camera_matrix": {"rows": 3, "cols": 3, "data": self.K.reshape(-1).tolist()},
                "distortion_model": "plumb_bob" if self.model == PINHOLE else self.model,
                "distortion_coefficients": {"rows": 1, "cols": len(self.D) or 5,
                                            "data": self.D.tolist() or [0.0] * 5}}

    @property
    def is_pinhole(self) -> bool:
        """No distortion: pixels map to rays through K alone."""
        return self.model == PINHOLE

    def same_as(self, other: Optional[CameraModel]) -> bool:
        """Equal size, model, frame and coefficients (camera_info repeats every frame; only changes count)."""
        return (other is not None and (self.width, self.height, self.model, self.frame_id)
                == (other.width, other.height, other.model, other.frame_id)
                and np.array_equal(self.K, other.K) and np.array_equal(self.D, other.D))

    # ---- distortion on normalised coordinates --------------------------------------------------------
    def _radtan(self, xy: np.ndarray):
        k1, k2, p1, p2, k3, k4, k5, k6 = self.D
        x, y = xy[:, 0], xy[:, 1]
        r2 = x * x + y * y
        num = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        den = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
        rad = num / den
        drad = ((k1 + r2 * (2 * k2 + 3 * k3 * r2)) * den - num * (k4 + r2 * (2 * k5 + 3 * k6 * r2))) / (den * den)
        xd = x * rad + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * rad + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        jac = np.empty((len(x), 2, 2))
        jac[:, 0, 0] = rad + 2 * x * x * drad + 2 * p1 * y + 6 * p2 * x
        jac[:, 0, 1] = 2 * x * y * drad + 2 * p1 * x + 2 * p2 * y
        jac[:, 1, 0] = 2 * x * y * drad + 2 * p1 * x + 2 * p2 * y
        jac[:, 1, 1] = rad + 2 * y * y * drad + 6 * p1 * y + 2 * p2 * x
        return np.stack([xd, yd], axis=1), jac

    def _theta_d(self, theta: np.ndarray):
        k1, k2, k3, k4 = self.D
        t2 = theta * theta
        poly = 1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
        dpoly = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
        return theta * poly, dpoly

    # ---- rays ------------------------------------------------------------------------------------
    def pixels_to_rays(self, pixels: Any) -> np.ndarray:
        """(N, 2) pixels (u, v) of the raw image -> (N, 3) unit rays in the optical frame (float64).

        Undistortion inverts the model with Newton's method to 1e-14 (normalised units), more
        accurately than cv2.undistortPoints' 5 fixed iterations. Pixels outside the region where the
        distortion model is invertible give NaN rows. Source: OpenCV camera model documentation
        (calib3d "Detailed description", cv::fisheye).
        """
        uv = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        fx, s, cx = self.K[0]
        fy, cy = self.K[1, 1], self.K[1, 2]
        yd = (uv[:, 1] - cy) / fy
        xd = (uv[:, 0] - cx - s * yd) / fx
        dist = np.stack([xd, yd], axis=1)
        if self.model == PINHOLE:
            rays = np.concatenate([dist, np.ones((len(dist), 1))], axis=1)
        elif self.model == "equidistant":
            theta_d = np.hypot(xd, yd)
            theta = theta_d.copy()
            for _ in range(_NEWTON_ITERS):
                f, df = self._theta_d(theta)
                step = (f - theta_d) / df
                theta = theta - step
                if np.all(np.abs(step) < _NEWTON_TOL):
                    break
            ok = np.isfinite(theta) & (theta >= 0) & (theta < math.pi)
            ok &= np.abs(self._theta_d(theta)[0] - theta_d) < 1e-9
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = np.where(theta_d > 0, np.sin(theta) / np.where(theta_d > 0, theta_d, 1.0), 1.0)
            rays = np.stack([xd * scale, yd * scale, np.cos(theta)], axis=1)
            rays[~ok] = np.nan
        else:
            xy = dist.copy()
            for _ in range(_NEWTON_ITERS):
                f, jac = self._radtan(xy)
                try:
                    step = np.linalg.solve(jac, (f - dist)[:, :, None])[:, :, 0]
                except np.linalg.LinAlgError:
                    step = np.full_like(xy, np.nan)
                xy = xy - step
                if np.all(np.abs(step) < _NEWTON_TOL):
                    break
            with np.errstate(invalid="ignore"):
                ok = np.all(np.isfinite(xy), axis=1) & (np.abs(self._radtan(xy)[0] - dist).max(axis=1) < 1e-9)
            rays = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
            rays[~ok] = np.nan
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def rays_to_pixels(self, rays: Any) -> np.ndarray:
        """(N, 3) directions in the optical frame -> (N, 2) raw-image pixels (cv2.projectPoints /
        cv2.fisheye.projectPoints with rvec = tvec = 0). Rays behind the camera (z <= 0; equidistant:
        angle >= 180 deg) give NaN rows."""
        r = np.asarray(rays, dtype=np.float64).reshape(-1, 3)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.model == "equidistant":
                rho = np.hypot(r[:, 0], r[:, 1])
                theta = np.arctan2(rho, r[:, 2])
                theta_d = self._theta_d(theta)[0]
                scale = np.where(rho > 0, theta_d / np.where(rho > 0, rho, 1.0), 0.0)
                xy = r[:, :2] * scale[:, None]
                xy[(rho == 0) & (r[:, 2] <= 0)] = np.nan
            else:
                xy = r[:, :2] / r[:, 2:3]
                xy[r[:, 2] <= 0] = np.nan
                if self.model != PINHOLE:
                    xy = self._radtan(xy)[0]
        fx, s, cx = self.K[0]
        fy, cy = self.K[1, 1], self.K[1, 2]
        return np.stack([fx * xy[:, 0] + s * xy[:, 1] + cx, fy * xy[:, 1] + cy], axis=1)

    def undistort_pixels(self, pixels: Any) -> np.ndarray:
        """(N, 2) raw pixels -> (N, 2) pixels of the ideal pinhole camera with the same K."""
        rays = self.pixels_to_rays(pixels)
        with np.errstate(invalid="ignore", divide="ignore"):
            return PinholeView(self.K).project(rays)


class PinholeView:
    """K without distortion: project rays with z > 0 (NaN otherwise)."""

    def __init__(self, K: np.ndarray) -> None:
        self.K = np.asarray(K, dtype=np.float64).reshape(3, 3)

    def project(self, rays: np.ndarray) -> np.ndarray:
        """(N, 3) directions -> (N, 2) pixels u = K r / r_z (float64); NaN rows for r_z <= 0."""
        r = np.asarray(rays, dtype=np.float64).reshape(-1, 3)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = r @ self.K.T
            uv = p[:, :2] / p[:, 2:3]
        uv[~(r[:, 2] > 0)] = np.nan
        return uv


def azimuth_elevation(ray: Sequence[float]):
    """(azimuth, elevation) in radians of a direction in an optical frame (x right, y down, z forward).

    Same angles as in the REP 103 body frame (x forward, y left, z up) of the camera: azimuth is
    positive to the LEFT (counter-clockwise seen from above, like yaw), elevation positive UP:
    azimuth = atan2(-x, z), elevation = atan2(-y, hypot(x, z)). The optical axis is (0, 0).
    """
    x, y, z = (float(v) for v in ray)
    return math.atan2(-x, z), math.atan2(-y, math.hypot(x, z))


@dataclass
class RigidTransform:
    """p_target = R @ p_source + t (metres); `tf2 lookup_transform(target, source)`."""

    R: np.ndarray
    t: np.ndarray

    @classmethod
    def from_quaternion(cls, translation: Sequence[float], quaternion_xyzw: Sequence[float]) -> RigidTransform:
        """Translation (x, y, z) and a unit quaternion (x, y, z, w) as tf2 / geometry_msgs store them."""
        q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(-1)
        t = np.asarray(translation, dtype=np.float64).reshape(-1)
        if q.size != 4 or t.size != 3 or not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
            raise GeometryError(f"transform needs finite x y z and qx qy qz qw, got {t.tolist()} {q.tolist()}")
        norm = float(np.linalg.norm(q))
        if abs(norm - 1.0) > 1e-3:
            raise GeometryError(f"quaternion {q.tolist()} has norm {norm:.4f}, not 1; order is qx qy qz qw")
        x, y, z, w = q / norm
        R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        return cls(R, t)

    @classmethod
    def from_matrix(cls, matrix: Any) -> RigidTransform:
        """4x4 homogeneous matrix (16 numbers row-major) [R t; 0 0 0 1]; GeometryError unless rigid."""
        m = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
        R = m[:3, :3]
        if not np.all(np.isfinite(m)) or not np.allclose(m[3], [0, 0, 0, 1]) \
                or not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise GeometryError("4x4 transform is not rigid (rotation part not orthonormal with det +1, "
                                "or last row not 0 0 0 1)")
        return cls(R.copy(), m[:3, 3].copy())

    @classmethod
    def parse(cls, values: Any) -> RigidTransform:
        """7 numbers `x y z qx qy qz qw` or 16 numbers (4x4 row-major), as a string or a sequence."""
        if isinstance(values, str):
            fields = [f for f in values.replace(",", " ").replace("[", " ").replace("]", " ").split() if f]
        else:
            fields = list(np.asarray(values, dtype=object).reshape(-1))
        try:
            nums = [float(f) for f in fields]
        except (TypeError, ValueError):
            raise GeometryError(f"extrinsic transform {values!r} is not numbers; give 'x y z qx qy qz qw' "
                                "or a 4x4 matrix (16 numbers)") from None
        if len(nums) == 7:
            return cls.from_quaternion(nums[:3], nums[3:])
        if len(nums) == 16:
            return cls.from_matrix(nums)
        raise GeometryError(f"extrinsic transform has {len(nums)} numbers; give 'x y z qx qy qz qw' (7) or a "
                            "4x4 matrix (16), thermal optical frame -> RGB optical frame")

    @classmethod
    def from_msg(cls, transform: Any) -> RigidTransform:
        """geometry_msgs/Transform (or TransformStamped.transform), duck-typed."""
        tr, rot = transform.translation, transform.rotation
        return cls.from_quaternion((tr.x, tr.y, tr.z), (rot.x, rot.y, rot.z, rot.w))

    def same_as(self, other: Optional[RigidTransform], tol: float = 1e-9) -> bool:
        """Equal rotation and translation within `tol` (TF is polled; only changes count)."""
        return other is not None and np.allclose(self.R, other.R, atol=tol) and np.allclose(self.t, other.t, atol=tol)
