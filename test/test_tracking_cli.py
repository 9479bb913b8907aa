"""`ckd track` end to end on generated sequence folders/videos, layouts, and error exits."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_tracking_parity import ReplayBackend

import ckd_ros.tracking.cli as track_cli
from ckd_ros.cli import main
from ckd_ros.frames.folders import detect_layout, parse_box_row, read_first_box
from ckd_ros.runtime.base import Backend
from conftest import shared_path


@pytest.fixture(scope="module")
def seq(tracker_seq):
    return tracker_seq


class StillBackend(Backend):
    """Peak at the centre cell: the box stays where it is (plumbing tests)."""

    name = "still"

    def infer(self, z_rgb, z_tir, x_rgb, x_tir):
        score = np.full((1, 1, 16, 16), 0.05, np.float32)
        score[0, 0, 8, 8] = 0.7
        return {"score_map": score, "size_map": np.full((1, 2, 16, 16), 0.1, np.float32),
                "offset_map": np.zeros((1, 2, 16, 16), np.float32)}


def use_backend(monkeypatch, backend):
    opened = []

    def fake_open(args):
        opened.append(args)
        return backend

    monkeypatch.setattr(track_cli, "_open_backend", fake_open)
    return opened


def write_fixture_sequence(root, seq):
    (root / "visible").mkdir(parents=True)
    (root / "infrared").mkdir()
    for i, (rgb, tir) in enumerate(zip(seq["frames_rgb"], seq["frames_tir"])):
        cv2.imwrite(str(root / "visible" / f"{i:05d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "infrared" / f"{i:05d}.png"), tir[:, :, 0])  # 1-channel, as the fixture was
    x, y, w, h = seq["init_box"]
    (root / "init.txt").write_text(f"{x},{y},{w},{h}\n1,2,3,4\n")


def read_rows(path):
    return np.loadtxt(path, ndmin=2)


def test_track_fixture_sequence_matches_official(tmp_path, monkeypatch, capsys, seq):
    seq_dir = tmp_path / "seqA"
    write_fixture_sequence(seq_dir, seq)
    backend = ReplayBackend(seq)
    use_backend(monkeypatch, backend)
    out, video = tmp_path / "res" / "seqA.txt", tmp_path / "overlay.mp4"
    assert main(["track", "--sequence", str(seq_dir), "--out", str(out), "--video", str(video),
                 "--quiet"]) == 0
    assert backend.template_ok and backend.search_ok == [True] * 7  # PNG round trip + BGR handling
    rows = read_rows(out)
    np.testing.assert_allclose(rows, seq["pred_boxes"], atol=1e-2)
    assert '"frames": 8' in capsys.readouterr().out
    cap = cv2.VideoCapture(str(video))
    n, ok, frame = 0, True, None
    while ok:
        ok, img = cap.read()
        if ok:
            n, frame = n + 1, img
    cap.release()
    assert n == 8 and frame.shape == (360, 960, 3)


def test_track_videos_with_init_and_int_results(tmp_path, monkeypatch):
    opened = use_backend(monkeypatch, StillBackend())
    rng = np.random.default_rng(9)
    paths = []
    for name in ("rgb.mp4", "tir.mp4"):
        path = tmp_path / name
        vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
        assert vw.isOpened()
        for _ in range(5):
            vw.write(rng.integers(0, 256, (64, 96, 3), np.uint8))
        vw.release()
        paths.append(path)
    out = tmp_path / "v.txt"
    assert main(["track", "--rgb", str(paths[0]), "--thermal", str(paths[1]), "--init", "20.7,10,30,20",
                 "--out", str(out), "--int", "--quiet", "--thermal-norm", "minmax",
                 "--backend", "torch", "--lost-threshold", "0.5"]) == 0
    assert opened[0].backend == "torch"
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and lines[0] == "20 10 30 20"  # truncated like the official writer
    assert all(len(line.split()) == 4 and "." not in line for line in lines)


def test_sixteen_bit_thermal_folder_and_max_frames(tmp_path, monkeypatch):
    use_backend(monkeypatch, StillBackend())
    for sub in ("rgb", "ir"):
        (tmp_path / sub).mkdir()
    rng = np.random.default_rng(10)
    for i in range(4):
        cv2.imwrite(str(tmp_path / "rgb" / f"{i:06d}.jpg"), rng.integers(0, 256, (48, 64, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "ir" / f"{i:06d}.png"), rng.integers(7000, 9000, (48, 64), np.uint16))
    (tmp_path / "rgb.txt").write_text("10 12 20 16\n")
    out = tmp_path / "r.txt"
    args = ["track", "--sequence", str(tmp_path), "--out", str(out), "--quiet", "--max-frames", "3"]
    assert main(args) == 0  # auto: 16-bit -> percentile
    rows = read_rows(out)
    assert rows.shape == (3, 4) and rows[0].tolist() == [10, 12, 20, 16]


def test_layout_detection_and_gt_formats(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "i").mkdir()
    (tmp_path / "groundTruth_v.txt").write_text("10 20 50 60\n")
    rgb_dir, tir_dir, gt = detect_layout(tmp_path)
    assert (rgb_dir.name, tir_dir.name, gt.name) == ("v", "i", "groundTruth_v.txt")
    assert read_first_box(gt) == [10, 20, 40, 40]  # GTOT ltrb, w = x2 - x1
    (tmp_path / "init.txt").write_text("11\t21\t40\t40\n")
    assert detect_layout(tmp_path)[2].name == "init.txt"  # init.txt first, like the official loaders
    assert parse_box_row("1,2,5,2,5,8,1,8") == [1, 2, 4, 6]  # polygon -> bounding box


def test_real_vtuav_clip_layout():
    root = shared_path("data", "vtuav_bus1")
    rgb_dir, tir_dir, gt = detect_layout(root)
    assert (rgb_dir.name, tir_dir.name, gt.name) == ("rgb", "ir_gray", "rgb.txt")
    assert read_first_box(gt) == [float(v) for v in gt.read_text().split("\n")[0].split()]


def run_err(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


def test_error_exits(tmp_path, monkeypatch, capsys):
    use_backend(monkeypatch, StillBackend())
    code, err = run_err(["track", "--sequence", str(tmp_path / "nope")], capsys)
    assert code == 2 and "does not exist" in err and len(err.splitlines()) == 1
    code, err = run_err(["track", "--sequence", str(tmp_path)], capsys)
    assert code == 2 and "no RGB/thermal sub-folder pair" in err
    (tmp_path / "visible").mkdir()
    (tmp_path / "infrared").mkdir()
    code, err = run_err(["track", "--sequence", str(tmp_path)], capsys)
    assert code == 2 and "--init" in err
    code, err = run_err(["track", "--sequence", str(tmp_path), "--init", "1,2,3"], capsys)
    assert code == 2 and "4 numbers" in err
    code, err = run_err(["track", "--sequence", str(tmp_path), "--init", "1,2,3,4"], capsys)
    assert code == 2 and "no images" in err
    img = np.zeros((40, 50, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "visible" / "0.png"), img)
    cv2.imwrite(str(tmp_path / "infrared" / "0.png"), np.zeros((40, 50), np.uint16))
    code, err = run_err(["track", "--sequence", str(tmp_path), "--init", "100,2,3,4"], capsys)
    assert code == 2 and "frame 0" in err and "outside" in err
    code, err = run_err(["track", "--sequence", str(tmp_path), "--init", "1,2,3,4",
                         "--thermal-norm", "none"], capsys)
    assert code == 2 and "8-bit" in err
    code, err = run_err(["track", "--sequence", str(tmp_path), "--init", "1,2,3,4",
                         "--thermal-norm", "fixed"], capsys)
    assert code == 2 and "value_range" in err
    code, err = run_err(["track", "--sequence", str(tmp_path), "--init", "1,2,3,4",
                         "--homography", "1,0,0,0,1"], capsys)
    assert code == 2 and "9 values" in err
    cv2.imwrite(str(tmp_path / "infrared" / "0.png"), np.zeros((20, 50), np.uint8))
    code, err = run_err(["track", "--sequence", str(tmp_path), "--init", "1,2,3,4"], capsys)
    assert code == 2 and "same size" in err and "homography" in err


def test_missing_checkpoint_is_reported(tmp_path, capsys):
    for sub in ("rgb", "ir"):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "000000.png"), np.zeros((40, 50, 3), np.uint8))
    code, err = run_err(["track", "--sequence", str(tmp_path), "--init", "1,2,3,4", "--checkpoint",
                         str(tmp_path / "model.pth")], capsys)
    assert code == 2 and "--checkpoint" in err and "does not exist" in err
    code, err = run_err(["track", "--sequence", str(tmp_path), "--init", "1,2,3,4"], capsys)
    assert code == 2 and "no model" in err


@pytest.mark.torch
def test_real_clip_with_random_weight_model(tmp_path, capsys):
    """The VTUAV clip through the real backend factory (small random-weight model, CPU torch)."""
    clip = shared_path("data", "vtuav_bus1")
    ckpt = shared_path("fixtures", "ckd_parity", "mce.pth")
    out = tmp_path / "bus1.txt"
    assert main(["track", "--sequence", str(clip), "--checkpoint", str(ckpt), "--preset", "parity_mce",
                 "--backend", "torch", "--device", "cpu", "--max-frames", "6", "--out", str(out),
                 "--quiet"]) == 0
    rows = read_rows(out)
    assert rows.shape == (6, 4)
    np.testing.assert_allclose(rows[0], read_first_box(clip / "rgb.txt"))
    assert np.all(rows[:, 2:] >= 10) and np.all(rows[:, 0] + 10 <= 960)  # clipped into the 960x540 frame
    assert '"frames": 6' in capsys.readouterr().out
