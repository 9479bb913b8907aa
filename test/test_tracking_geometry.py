"""Camera models, target rays, registration from camera_info + extrinsics, degenerate calibrations,
spreadsheet point files and the thermal coverage of the RGB frame."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ckd_ros.cli import main
from ckd_ros.errors import GeometryError
from ckd_ros.synthetic.rig import rig_homography, rig_intrinsics
from ckd_ros.tracking import Registration
from ckd_ros.tracking.calibration import calibrate_from_camera_info, load_correspondences
from ckd_ros.tracking.camera_model import CameraModel, RigidTransform, azimuth_elevation
from ckd_ros.tracking.cli import load_homography
from ckd_ros.tracking.registration import (
    MIN_COVERAGE,
    estimate_homography,
    exact_mapping,
    homography_from_calibration,
    registration_from_calibration,
    thermal_overlap,
)

K = np.array([[500.0, 0.0, 320.0], [0.0, 510.0, 250.0], [0.0, 0.0, 1.0]])
MODELS = {
    "plumb_bob": [-0.3, 0.12, 0.001, -0.002, -0.02],
    "rational_polynomial": [0.2, -0.1, 0.001, 0.002, 0.01, 0.3, -0.05, 0.02],
    "equidistant": [0.05, -0.02, 0.01, -0.003],
}
TIGHT = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-15)


def angle(a, b) -> np.ndarray:
    """Angle (rad) between row vectors, accurate for tiny angles (atan2 of |a x b| and a.b)."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), (a * b).sum(axis=1))


def pixels(n=300, seed=1):
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(0, 639, n), rng.uniform(0, 511, n)]


def fisheye_reference(px, K, D):
    """OpenCV's equidistant undistortion iterated to convergence (the 1e-6 rad reference). OpenCV < 4.6
    (Humble's apt 4.5.4) has no `criteria` argument and stops after 10 iterations: no reference there."""
    try:
        return cv2.fisheye.undistortPoints(np.asarray(px, np.float64).reshape(-1, 1, 2), K, D,
                                           criteria=TIGHT).reshape(-1, 2)
    except cv2.error as exc:
        if "criteria" not in str(exc):
            raise
        pytest.skip(f"OpenCV {cv2.__version__}: fisheye.undistortPoints takes no criteria (4.6+), so it is no "
                    "converged reference; the dev venv's OpenCV checks this")


@pytest.mark.parametrize("model", sorted(MODELS))
def test_rays_match_opencv_undistort(model):
    cam = CameraModel(640, 512, K, MODELS[model], model)
    px = pixels()
    rays = cam.pixels_to_rays(px)
    D = np.array(MODELS[model])
    if model == "equidistant":
        ref = fisheye_reference(px, K, D)
    else:  # undistortPoints' default 5 iterations are 2e-4 rad off with this distortion: iterate to convergence
        ref = cv2.undistortPointsIter(px.reshape(-1, 1, 2), K, D, None, None, TIGHT).reshape(-1, 2)
    assert not np.isnan(rays).any()
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0, atol=1e-12)
    assert angle(rays, np.c_[ref, np.ones(len(ref))]).max() < 1e-6
    # and back: the forward model is OpenCV's projectPoints
    back = cam.rays_to_pixels(rays)
    project = cv2.fisheye.projectPoints if model == "equidistant" else cv2.projectPoints
    ref_px = (project(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)[0]).reshape(-1, 2)
    np.testing.assert_allclose(back, px, atol=1e-6)
    np.testing.assert_allclose(ref_px, px, atol=1e-6)


def test_pinhole_rays_and_angles_by_hand():
    cam = CameraModel(640, 512, [[400, 0, 320], [0, 400, 250], [0, 0, 1]], [0, 0, 0, 0, 0], "plumb_bob")
    assert cam.is_pinhole
    cases = [  # pixel -> (ray, azimuth, elevation): x right, y down, z forward; azimuth + left, elevation + up
        ((320, 250), (0, 0, 1), 0.0, 0.0),
        ((720, 250), (1, 0, 1), -math.pi / 4, 0.0),
        ((320, -150), (0, -1, 1), 0.0, math.pi / 4),
        ((120, 450), (-0.5, 0.5, 1), math.atan2(0.5, 1.0), -math.atan2(0.5, math.hypot(0.5, 1.0))),
    ]
    for px, ray, az, el in cases:
        got = cam.pixels_to_rays([px])[0]
        expected = np.array(ray, float) / np.linalg.norm(ray)
        assert angle(got, expected)[0] < 1e-12
        a, e = azimuth_elevation(got)
        assert abs(a - az) < 1e-12 and abs(e - el) < 1e-12


def test_camera_info_yaml_and_refusals(tmp_path):
    path = tmp_path / "thermal.yaml"
    path.write_text("image_width: 640\nimage_height: 512\ncamera_name: thermal_optical\n"
                    "camera_matrix:\n  rows: 3\n  cols: 3\n  data: [500, 0, 320, 0, 510, 250, 0, 0, 1]\n"
                    "distortion_model: equidistant\ndistortion_coefficients:\n  rows: 1\n  cols: 4\n"
                    "  data: [0.05, -0.02, 0.01, -0.003]\n"
                    "rectification_matrix:\n  rows: 3\n  cols: 3\n  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]\n")
    cam = CameraModel.from_yaml(path)
    assert (cam.width, cam.height, cam.model, cam.frame_id) == (640, 512, "equidistant", "thermal_optical")
    np.testing.assert_array_equal(cam.K, K)
    assert CameraModel.from_dict(cam.to_dict()).same_as(cam)
    for data, match in [
        ({"image_width": 640, "image_height": 512}, "camera_matrix"),
        ({"image_width": 640, "image_height": 512, "camera_matrix": {"data": [0] * 9}}, "not a camera matrix"),
        ({"image_width": 640, "image_height": 512, "camera_matrix": {"data": K.ravel().tolist()},
          "distortion_model": "equidistant", "distortion_coefficients": {"data": [0.1, 0.2]}}, "4 coefficients"),
        ({"image_width": 640, "image_height": 512, "camera_matrix": {"data": K.ravel().tolist()},
          "distortion_model": "kannala", "distortion_coefficients": {"data": [0.1]}}, "not supported"),
        ({"image_height": 512}, "image_width"),
    ]:
        with pytest.raises(GeometryError, match=match):
            CameraModel.from_dict(data)


def test_rigid_transform_quaternion_and_matrix():
    half = math.radians(30) / 2  # 30 deg about the optical y axis (down)
    tr = RigidTransform.parse(f"0.1 -0.02 0.03 0 {math.sin(half)} 0 {math.cos(half)}")
    c, s = math.cos(2 * half), math.sin(2 * half)
    np.testing.assert_allclose(tr.R, [[c, 0, s], [0, 1, 0], [-s, 0, c]], atol=1e-12)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = tr.R, tr.t
    assert RigidTransform.parse(m.ravel().tolist()).same_as(tr)
    for bad, match in [("1 2 3", "7"), ("0 0 0 0 0 0 2", "norm"), ("a b c", "not numbers"),
                       (np.diag([1, 1, -1, 1]).ravel().tolist(), "not rigid")]:
        with pytest.raises(GeometryError, match=match):
            RigidTransform.parse(bad)


def _project(K_, R, t, X):
    p = (X @ R.T + t) @ K_.T
    return p[:, :2] / p[:, 2:3]


@pytest.mark.parametrize("depth", [None, 4.0, 1.5])
def test_homography_from_calibration_against_projected_3d_points(depth):
    """Ground truth independent of the formula: 3D points on the plane seen by both cameras."""
    k_rgb = np.array([[600.0, 0, 330], [0, 600, 245], [0, 0, 1]])
    k_tir = np.array([[250.0, 0, 160], [0, 252, 128], [0, 0, 1]])
    tir = CameraModel(320, 256, k_tir, frame_id="thermal_optical")
    rgb = CameraModel(640, 512, k_rgb, frame_id="rgb_optical")
    tr = RigidTransform.from_quaternion((0.12, -0.03, 0.02), (0.01, -0.02, 0.005, 0.99972))
    H = homography_from_calibration(rgb, tir, tr, depth)
    q = pixels(50)[:, :1] * [0.5, 0] + pixels(50, 2)[:, 1:] * [0, 0.5]  # thermal pixels
    rays = np.c_[(q - k_tir[:2, 2]) / np.diag(k_tir)[:2], np.ones(len(q))]
    X = rays * (1e9 if depth is None else depth)  # on the plane Z_thermal = depth
    expected = _project(k_rgb, tr.R, tr.t, X)
    got = cv2.perspectiveTransform(q.reshape(-1, 1, 2), H).reshape(-1, 2)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    reg, err = registration_from_calibration(rgb, tir, tr, depth)
    assert err == 0.0
    np.testing.assert_allclose(reg.matrix, H)


@pytest.mark.parametrize("tir_model, tir_d, max_err", [("plumb_bob", [-0.02, 0.005, 0, 0, 0], 5.0),
                                                        ("equidistant", [0.02, -0.01, 0, 0], None)])
def test_distorted_cameras_fit_the_exact_mapping(tir_model, tir_d, max_err):
    rgb = CameraModel(640, 512, K, [-0.05, 0.01, 0, 0, 0], "plumb_bob")
    tir = CameraModel(320, 256, [[250, 0, 160], [0, 250, 128], [0, 0, 1]], tir_d, tir_model)
    tr = RigidTransform.parse("0.05 0 0 0 0 0 1")
    reg, err = registration_from_calibration(rgb, tir, tr, 10.0)
    q = pixels(200)[:, :2] * [0.5, 0.5]
    exact = exact_mapping(rgb, tir, tr, 10.0, q)
    got = cv2.perspectiveTransform(q.reshape(-1, 1, 2), reg.matrix).reshape(-1, 2)
    dev = np.linalg.norm(got - exact, axis=1).max()
    assert 0.0 < dev <= err * 1.2 + 1e-9  # the reported error is the real one (measured on a lattice)
    if max_err is not None:
        assert err < max_err  # mild distortion: a homography stays within a few pixels
    else:
        assert err > 10.0  # a fisheye is not a homography: the error says so
    if tir_model != "equidistant":
        return
    # and the exact mapping itself agrees with OpenCV's undistort + projectPoints
    ref = fisheye_reference(q, tir.K, tir.D)
    X = np.c_[ref, np.ones(len(ref))] * 10.0
    ref_px = cv2.projectPoints(X, cv2.Rodrigues(tr.R)[0], tr.t, rgb.K, rgb.D[:5])[0].reshape(-1, 2)
    np.testing.assert_allclose(exact, ref_px, atol=1e-6)


def test_synthetic_rig_camera_info_matches_the_rendered_mapping():
    """Acceptance: camera_info + TF of the synthetic rig give its true homography within 0.5 px."""
    for offset in ((12.0, -7.0), (0.0, 0.0)):
        h_true = rig_homography(offset)
        k_rgb, k_tir = rig_intrinsics(640, 512, h_true, 60.0)
        rgb, tir = CameraModel(640, 512, k_rgb), CameraModel(640, 512, k_tir)
        reg, _ = registration_from_calibration(rgb, tir, RigidTransform.parse("0 0 0 0 0 0 1"), None)
        q = np.stack(np.meshgrid(np.linspace(0, 639, 33), np.linspace(0, 511, 33)), -1).reshape(-1, 1, 2)
        diff = cv2.perspectiveTransform(q, reg.matrix) - cv2.perspectiveTransform(q, h_true)
        assert np.abs(diff).max() < 0.5
        # boxes mapped thermal -> RGB equal the homography path
        box = [100.0, 80.0, 40.0, 30.0]
        np.testing.assert_allclose(reg.box_thermal_to_rgb(box), Registration(h_true).box_thermal_to_rgb(box),
                                   atol=0.5)
    assert rig_intrinsics(640, 512, np.array([[1, 0.2, 0], [0.1, 1, 0], [0, 0, 1.0]]))[1] is None


# ---- degenerate calibrations --------------------------------------------------------------------
H_TRUE = np.array([[1.9, 0.05, 12.0], [-0.03, 2.1, -7.5], [2e-5, -1e-5, 1.0]])


def mapped(src):
    return cv2.perspectiveTransform(np.asarray(src, float).reshape(-1, 1, 2), H_TRUE).reshape(-1, 2)


@pytest.mark.parametrize("src, match", [
    ([[10, 10], [20, 20], [30, 30], [40, 40]], "one line"),
    ([[i * 37.0, 5 + i * 11.0] for i in range(9)], "one line"),
    ([[10, 10], [20, 20], [30, 30], [300, 40]], "degenerate"),
    ([[0, 0], [200, 200.5], [400, 400], [600, 601]], "one line"),
    ([[0, 0], [200, 205], [400, 400], [600, 601]], "degenerate"),
    ([[10, 10], [10, 10], [300, 40], [300, 40], [50, 400]], "distinct"),
    ([[10, 10], [300, 40], [50, float("nan")], [300, 400]], "NaN"),
    ([[10, 10], [300, 40], [50, 400]], "at least 4"),
], ids=["collinear4", "collinear9", "three_collinear_plus_one", "nearly_collinear", "nearly_degenerate",
        "duplicates", "nan", "too_few"])
def test_degenerate_correspondences_are_refused(src, match):
    src = np.asarray(src, float)
    dst = np.where(np.isfinite(src), mapped(np.nan_to_num(src)), np.nan)
    with pytest.raises(GeometryError, match=match):
        estimate_homography(src, dst)


def test_good_four_points_still_fit():
    src = np.array([[10, 10], [600, 20], [590, 500], [20, 480.0]])
    mat, inliers, errors = estimate_homography(src, mapped(src))
    np.testing.assert_allclose(mat, H_TRUE, rtol=1e-6, atol=1e-8)
    assert inliers.all() and errors.max() < 1e-3  # cv2.findHomography solves in float32 internally


def test_calibrate_cli_refuses_in_one_line(tmp_path, capsys):
    pts = tmp_path / "p.txt"
    pts.write_text("10 10 20 20\n20 20 40 40\n30 30 60 60\n40 40 80 80\n")
    out = tmp_path / "reg.yaml"
    assert main(["calibrate", str(pts), "--out", str(out)]) == 2
    cap = capsys.readouterr()
    assert cap.err.count("\n") == 1 and "one line" in cap.err and "spread" in cap.err
    assert "nan" not in cap.out.lower() and not out.exists()


SPREADSHEETS = {
    "excel_de.csv": ('\ufeff"thermal x";"thermal y";"rgb x";"rgb y";;\n"Kalibrierung 3";;;;;\n',
                     lambda r: ";".join(f'"{v:.6f}"'.replace(".", ",") for v in r) + ";;\n"),
    "libre_tab.tsv": ("thermal_x\tthermal_y\trgb_x\trgb_y\n", lambda r: "\t".join(f"{v:.6f}" for v in r) + "\n"),
    "quoted.csv": ('"thermal_x","thermal_y","rgb_x","rgb_y"\r\n',
                   lambda r: ",".join(f'"{v:.6f}"' for v in r) + "\r\n"),
    "spaces.txt": ("# thermal_x thermal_y rgb_x rgb_y\n", lambda r: "  ".join(f"{v:.6f}" for v in r) + "\n"),
}


@pytest.mark.parametrize("name", sorted(SPREADSHEETS))
def test_spreadsheet_point_files(tmp_path, name):
    rng = np.random.default_rng(8)
    src = rng.uniform([0, 0], [320, 256], size=(10, 2))
    rows = np.c_[src, mapped(src)]
    head, fmt = SPREADSHEETS[name]
    path = tmp_path / name
    path.write_bytes((head + "".join(fmt(r) for r in rows)).encode("utf-8"))  # as saved, no newline translation (3.8)
    np.testing.assert_allclose(load_correspondences(path), rows, atol=1e-5)


def test_utf16_and_bad_point_files(tmp_path):
    data = [(1, 2, 3, 4), (50, 2, 30, 4), (5, 60, 3, 70), (80, 90, 70, 60)]
    rows = "thermal_x;thermal_y;rgb_x;rgb_y\n" + "".join(f"{a};{b};{c};{d}\n" for a, b, c, d in data)
    path = tmp_path / "unicode.txt"
    path.write_bytes(rows.encode("utf-16"))
    assert load_correspondences(path).shape == (4, 4)
    for text, match in [("1,2,3,4\n5,6,7,8\nfoo,bar\n9,10,11,12\n13,14,15,16\n", ":3: not numbers"),
                        ("1;2;3;4;5\n", ":1: expected 4 numbers"),
                        ("a\nb\nc\nd\n1,2,3,4\n", ":4: not numbers"),
                        ("1;2;;4\n", ":1: not numbers")]:
        path = tmp_path / "bad.csv"
        path.write_text(text)
        with pytest.raises(GeometryError, match=match):
            load_correspondences(path)


# ---- thermal coverage ---------------------------------------------------------------------------
def test_thermal_overlap():
    box = (220, 170, 36, 30)
    right = thermal_overlap(Registration([2, 0, 0, 0, 2, 0, 0, 0, 1]), (160, 128), (320, 256), box)
    assert right.frame == 1.0 and right.box == 1.0 and right.warning() is None
    inverted = thermal_overlap(Registration([0.5, 0, 0, 0, 0.5, 0, 0, 0, 1]), (160, 128), (320, 256), box)
    assert abs(inverted.frame - 0.0625) < 0.01 and inverted.box == 0.0
    assert "6% of the RGB frame" in inverted.warning() and "0% of the target box" in inverted.warning()
    off = thermal_overlap(Registration([2, 0, 5000, 0, 2, 0, 0, 0, 1]), (160, 128), (320, 256))
    assert off.frame == 0.0 and off.warning()
    # a narrower thermal field of view: centred, half the width and height = 25 %
    narrow = thermal_overlap(Registration([1, 0, 80, 0, 1, 64, 0, 0, 1]), (160, 128), (320, 256))
    assert abs(narrow.frame - 0.25) < 0.01 and MIN_COVERAGE > 0.25
    # the horizon line inside the frame: points behind the thermal camera are not covered
    horizon = thermal_overlap(Registration([1, 0, 0, 0, 1, 0, 0, 0.01, 1]), (320, 256), (320, 256))
    assert 0.0 < horizon.frame < 1.0


def test_calibrate_cli_coverage_and_camera_info_mode(tmp_path, capsys):
    src = np.array([[10, 10], [300, 20], [290, 240], [20, 230], [160, 128]], float)
    pts = tmp_path / "p.csv"
    pts.write_text("".join(f"{a},{b},{a / 2},{b / 2}\n" for a, b in src))  # inverted: RGB = thermal / 2
    assert main(["calibrate", str(pts), "--thermal-size", "320x256", "--rgb-size", "640x512"]) == 0
    out = capsys.readouterr().out
    assert "thermal coverage of the RGB frame: 6.2%" in out and "warning:" in out
    for cam, k in (("rgb", [600, 0, 320, 0, 600, 256, 0, 0, 1]), ("tir", [300, 0, 160, 0, 300, 128, 0, 0, 1])):
        (tmp_path / f"{cam}.yaml").write_text(
            f"image_width: {640 if cam == 'rgb' else 320}\nimage_height: {512 if cam == 'rgb' else 256}\n"
            f"camera_matrix: {{rows: 3, cols: 3, data: {k}}}\ndistortion_model: plumb_bob\n"
            "distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n")
    good = tmp_path / "good.csv"
    good.write_text("".join(f"{a},{b},{2 * a},{2 * b}\n" for a, b in src))
    out_yaml = tmp_path / "reg.yaml"
    assert main(["calibrate", str(good), "--rgb-info", str(tmp_path / "rgb.yaml"), "--thermal-info",
                 str(tmp_path / "tir.yaml"), "--extrinsic", "0", "0", "0", "0", "0", "0", "1",
                 "--out", str(out_yaml)]) == 0
    out = capsys.readouterr().out
    assert "camera_info + extrinsic transform (plane at infinity)" in out
    assert "reprojection error (all):     mean 0.000 px, max 0.000 px" in out
    assert "thermal coverage of the RGB frame: 100.0%" in out
    np.testing.assert_allclose(load_homography(str(out_yaml)).matrix, np.diag([2.0, 2.0, 1.0]), atol=1e-9)
    assert main(["calibrate", "--rgb-info", str(tmp_path / "rgb.yaml")]) == 2
    assert "needs all of" in capsys.readouterr().err
    cal = calibrate_from_camera_info(tmp_path / "rgb.yaml", tmp_path / "tir.yaml", "0.1 0 0 0 0 0 1", 2.0)
    np.testing.assert_allclose(cal.homography, [[2, 0, 30], [0, 2, 0], [0, 0, 1]], atol=1e-9)  # 600 * 0.1 / 2


@pytest.mark.parametrize("homography, warned, coverage", [
    ("2,0,0,0,2,0,0,0,1", False, 1.0),
    ("0.5,0,0,0,0.5,0,0,0,1", True, 0.062),  # inverted (thermal -> RGB given backwards)
    ("2,0,5000,0,2,0,0,0,1", True, 0.0),  # wrong units: the thermal frame lands far off the RGB frame
])
def test_track_reports_thermal_coverage(tmp_path, monkeypatch, capsys, homography, warned, coverage):
    import json

    from test_tracking_cli import StillBackend, use_backend

    use_backend(monkeypatch, StillBackend())
    rng = np.random.default_rng(10)
    for sub, shape in (("rgb", (128, 160, 3)), ("ir", (64, 80))):  # thermal at half the RGB resolution
        (tmp_path / sub).mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / sub / f"{i:06d}.png"), rng.integers(0, 256, shape, np.uint8))
    args = ["track", "--rgb", str(tmp_path / "rgb"), "--thermal", str(tmp_path / "ir"), "--init", "100,80,30,20",
            "--homography", homography, "--out", str(tmp_path / "r.txt"), "--quiet"]
    assert main(args) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out.strip().splitlines()[-1])
    assert abs(summary["thermal_coverage"] - coverage) < 0.01
    assert ("warning: the registered thermal frame covers" in cap.err) == warned
