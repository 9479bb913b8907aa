"""Registration (thermal -> RGB homography) and `ckd calibrate`."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ckd_ros.cli import main
from ckd_ros.errors import GeometryError
from ckd_ros.tracking import Registration
from ckd_ros.tracking.cli import load_homography
from ckd_ros.tracking.registration import estimate_homography

H_TRUE = np.array([[1.9, 0.05, 12.0], [-0.03, 2.1, -7.5], [2e-5, -1e-5, 1.0]])


def test_identity_fast_path():
    reg = Registration(None)
    assert reg.is_identity and Registration.identity().is_identity
    assert Registration([1, 0, 0, 0, 1, 0, 0, 0, 1]).is_identity
    assert Registration(np.eye(3) * 2).is_identity  # normalised by H[2,2]
    tir = np.zeros((10, 20), np.uint8)
    assert reg.warp_thermal(tir, (99, 99, 3)) is tir  # no warp, no copy
    np.testing.assert_array_equal(reg.box_thermal_to_rgb([1, 2, 3, 4]), [1, 2, 3, 4])
    np.testing.assert_array_equal(reg.box_rgb_to_thermal([1, 2, 3, 4]), [1, 2, 3, 4])
    assert not Registration([1, 0, 0.5, 0, 1, 0, 0, 0, 1]).is_identity


def test_nine_floats_equal_matrix():
    a = Registration(H_TRUE.reshape(-1).tolist())
    b = Registration(H_TRUE)
    np.testing.assert_allclose(a.matrix, b.matrix)
    assert len(a.as_list()) == 9


@pytest.mark.parametrize("value, match", [
    ([1, 0, 0, 0, 1, 0, 0, 0], "9 values"),
    ([1, 0, 0, 0, float("nan"), 0, 0, 0, 1], "NaN"),
    ([1, 2, 0, 2, 4, 0, 0, 0, 1], "singular"),
    ([1, 0, 0, 0, 1, 0, 0, 0, 0], r"H\[2\]\[2\]"),
    ("abc", "9 numbers"),
])
def test_bad_homographies(value, match):
    with pytest.raises(ValueError, match=match):
        Registration(value)


def test_warp_moves_a_hot_spot_to_the_mapped_position():
    reg = Registration([2, 0, 10, 0, 2, 5, 0, 0, 1])
    tir = np.zeros((60, 80), np.uint8)
    tir[20:23, 30:33] = 255  # centre (31, 21)
    warped = reg.warp_thermal(tir, (160, 200, 3))
    assert warped.shape == (160, 200)
    ys, xs = np.nonzero(warped > 128)
    assert abs(xs.mean() - (2 * 31 + 10 + 0.5)) < 1.0 and abs(ys.mean() - (2 * 21 + 5 + 0.5)) < 1.0


def test_box_round_trip():
    affine = Registration([2, 0, 10, 0, 1.5, -4, 0, 0, 1])
    box = np.array([30.0, 40.0, 20.0, 12.0])
    rgb_box = affine.box_thermal_to_rgb(box)
    np.testing.assert_allclose(rgb_box, [70, 56, 40, 18])
    np.testing.assert_allclose(affine.box_rgb_to_thermal(rgb_box), box, atol=1e-9)
    # with perspective the axis-aligned box grows a little but still contains the original
    persp = Registration(H_TRUE)
    back = persp.box_rgb_to_thermal(persp.box_thermal_to_rgb(box))
    assert back[0] <= box[0] + 1e-9 and back[1] <= box[1] + 1e-9
    assert back[0] + back[2] >= box[0] + box[2] - 1e-9 and back[1] + back[3] >= box[1] + box[3] - 1e-9
    np.testing.assert_allclose(back, box, atol=1.0)


@pytest.mark.parametrize("box", [[150.0, 120.0, 60.0, 40.0], [5.0, 3.0, 50.0, 50.0]], ids=["inside", "border"])
def test_direct_thermal_crop_equals_warp_then_crop(box):
    """The tracker's one-warp thermal crop matches warping the whole frame and cropping it."""
    from ckd_ros.tracking.preprocess import sample_target

    rng = np.random.default_rng(11)
    tir = cv2.GaussianBlur(rng.integers(0, 256, (256, 320), np.uint8), (0, 0), 4)
    tir = cv2.normalize(tir, None, 0, 255, cv2.NORM_MINMAX)
    reg = Registration([1.4, 0.05, 8.0, -0.04, 1.45, 6.0, 1e-5, 0.0, 1.0])
    full, _ = sample_target(reg.warp_thermal(tir, (360, 480)), box, 4.0, 256)
    direct = reg.sample_thermal(tir, box, 4.0, 256)
    assert direct.shape == full.shape == (256, 256)
    diff = np.abs(direct.astype(int) - full.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 3
    assert np.count_nonzero(direct) > 0.3 * direct.size  # not just comparing padding


def synthetic_points(n=12, outlier=True):
    rng = np.random.default_rng(8)
    tir = rng.uniform([0, 0], [320, 256], size=(n, 2))
    rgb = cv2.perspectiveTransform(tir.reshape(-1, 1, 2), H_TRUE).reshape(-1, 2)
    if outlier:
        rgb[5] += (80.0, -60.0)  # a mis-clicked point
    return tir, rgb


def test_estimate_homography_with_outlier():
    tir, rgb = synthetic_points()
    mat, inliers, errors = estimate_homography(tir, rgb)
    np.testing.assert_allclose(mat, H_TRUE, rtol=1e-5, atol=1e-7)
    assert inliers.tolist() == [i != 5 for i in range(12)]
    assert errors[inliers].max() < 1e-3 and errors[5] > 50
    with pytest.raises(GeometryError, match="at least 4"):
        estimate_homography(tir[:3], rgb[:3])


def test_calibrate_cli_csv_and_yaml(tmp_path, capsys):
    tir, rgb = synthetic_points()
    csv = tmp_path / "points.csv"
    csv.write_text("thermal_x,thermal_y,rgb_x,rgb_y\n"
                   + "".join(f"{a:.6f},{b:.6f},{c:.6f},{d:.6f}\n" for (a, b), (c, d) in zip(tir, rgb)))
    out = tmp_path / "reg.yaml"
    assert main(["calibrate", str(csv), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "11 inliers" in text and "outlier rows (1-based, data rows only): 6" in text
    assert "reprojection error (inliers): mean" in text and "homography: [" in text
    np.testing.assert_allclose(load_homography(str(out)).matrix, H_TRUE, rtol=1e-5, atol=1e-7)
    # the printed snippet is valid YAML with 9 floats
    import yaml

    snippet = text[text.index("registration:"):]
    values = yaml.safe_load(snippet)["registration"]["homography"]
    np.testing.assert_allclose(np.reshape(values, (3, 3)), H_TRUE, rtol=1e-5, atol=1e-7)

    yml = tmp_path / "points.yaml"
    items = "".join(f"  - {{thermal: [{a}, {b}], rgb: [{c}, {d}]}}\n" for (a, b), (c, d) in zip(tir, rgb))
    yml.write_text("points:\n" + items)
    assert main(["calibrate", str(yml)]) == 0
    assert "11 inliers" in capsys.readouterr().out


def test_calibrate_cli_errors(tmp_path, capsys):
    few = tmp_path / "few.csv"
    few.write_text("1,2,3,4\n5,6,7,8\n9,10,11,12\n")
    assert main(["calibrate", str(few)]) == 2
    assert "at least 4" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3,4\n1,2,3\n")
    assert main(["calibrate", str(bad)]) == 2
    assert "expected 4 numbers" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
