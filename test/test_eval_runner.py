"""`ckd benchmark` runner: result/time files in the CKD format, resume, worker processes, and the real
Tracker driven through a static fake backend over a tiny dataset written with cv2."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from ckd_ros.cli import main
from ckd_ros.errors import CKDError
from ckd_ros.eval import evaluate, open_dataset
from ckd_ros.eval.runner import TrackerSpec, run_benchmark, sequence_frames

BOX = [30.0, 22.0, 20.0, 20.0]  # x y w h; 20x20 keeps the static backend's box exact (crop 80 px)
HAS_TRACKING = importlib.util.find_spec("ckd_ros.tracking") is not None


def make_rgbt234(root: Path, frames=(5, 4), size=(64, 96)) -> Path:
    """RGBT234 layout with images: visible frames carry a blue (BGR) marker, thermal frames are grey."""
    names = [f"seq{i}" for i in range(len(frames))]
    (root / "SequencesName.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "SequencesName.txt").write_text("\n".join(names))
    for name, n in zip(names, frames):
        seq = root / name
        for sub in ("visible", "infrared"):
            (seq / sub).mkdir(parents=True)
        for i in range(n):
            vis = np.zeros((*size, 3), np.uint8)
            vis[..., 0] = 200  # blue in BGR: channel 2 after the RGB conversion
            cv2.imwrite(str(seq / "visible" / f"v{i:04d}.png"), vis)
            cv2.imwrite(str(seq / "infrared" / f"i{i:04d}.png"), np.full(size, 90, np.uint8))
        for f in ("visible.txt", "infrared.txt", "init.txt"):
            (seq / f).write_text("\n".join(",".join(str(v) for v in BOX) for _ in range(n)) + "\n")
    return root


class DriftTracker:
    """Moves the box by (+1.7, -0.6) px per frame; checks the images it receives."""

    calls = []

    def initialize(self, rgb, tir, box):
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3 and rgb[0, 0].tolist() == [0, 0, 200]
        assert tir.shape == rgb.shape and (tir == 90).all()
        self.box = np.array(box, float)
        DriftTracker.calls.append("init")

    def track(self, rgb, tir):
        self.box = self.box + [1.7, -0.6, 0.0, 0.0]
        return type("R", (), {"box_xywh": self.box.copy(), "score": 1.0})()


@dataclass(frozen=True)
class DriftSpec:
    def build(self):
        return DriftTracker()


def test_sequence_frames_are_rgb_and_thermal_as_stored(tmp_path):
    ds = open_dataset("rgbt234", make_rgbt234(tmp_path / "ds", frames=(2,)))
    cv2.imwrite(str(tmp_path / "ds" / "seq0" / "infrared" / "i0001.png"), np.full((64, 96), 7000, np.uint16))
    (rgb0, tir0), (rgb1, tir1) = list(sequence_frames(ds.frames("seq0")))
    assert rgb0[0, 0].tolist() == [0, 0, 200] and rgb0.shape == (64, 96, 3)  # BGR file -> RGB order
    assert tir0.dtype == np.uint8 and tir0.shape == (64, 96)  # 1-channel file stays 1 channel
    assert tir1.dtype == np.uint16 and int(tir1[0, 0]) == 7000  # 16-bit thermal is not flattened


def test_result_files_resume_and_metrics(tmp_path):
    ds = open_dataset("rgbt234", make_rgbt234(tmp_path / "ds"))
    out = tmp_path / "res" / "CKD"
    DriftTracker.calls.clear()
    runs = run_benchmark(ds, out, DriftSpec(), progress=False)
    assert [(r.name, r.frames, r.skipped) for r in runs] == [("seq0", 5, False), ("seq1", 4, False)]
    assert all(r.fps > 0 for r in runs)
    lines = (out / "seq0.txt").read_text().splitlines()
    # tab-separated, truncated toward zero like astype(int): 22 - 0.6k -> 21.4 -> 21, 30 + 1.7*3 = 35.1 -> 35
    assert lines[0] == "30\t22\t20\t20" and lines[3] == "35\t20\t20\t20" and len(lines) == 5
    assert len((out / "seq0_time.txt").read_text().split()) == 5
    assert not list(out.glob("*.part"))
    # resume: finished sequences are skipped; a sequence without its time file runs again
    (out / "seq1_time.txt").unlink()
    DriftTracker.calls.clear()
    runs = run_benchmark(ds, out, DriftSpec(), progress=False)
    assert DriftTracker.calls == ["init"] and [r.skipped for r in runs] == [True, False]
    got = evaluate(tmp_path / "ds", out, "rgbt234")
    assert got["MPR"] == 100.0 and 60 < got["MSR"] < 100


def test_worker_processes_match_in_process(tmp_path):
    ds = open_dataset("rgbt234", make_rgbt234(tmp_path / "ds", frames=(5, 3, 4)))
    run_benchmark(ds, tmp_path / "one", DriftSpec(), workers=1, progress=False)
    runs = run_benchmark(ds, tmp_path / "two", DriftSpec(), workers=2, progress=False)
    assert [r.name for r in runs] == ds.names and not any(r.skipped for r in runs)
    for name in ds.names:
        assert (tmp_path / "one" / f"{name}.txt").read_text() == (tmp_path / "two" / f"{name}.txt").read_text()


@pytest.mark.skipif(not HAS_TRACKING, reason="ckd_ros.tracking not present in this build")
def test_worker_build_failure_is_one_clear_error(tmp_path):
    ds = open_dataset("rgbt234", make_rgbt234(tmp_path / "ds", frames=(3, 3)))
    with pytest.raises(CKDError, match="a worker process could not build the tracker: open_backend needs"):
        run_benchmark(ds, tmp_path / "res", TrackerSpec(backend="onnxruntime"), workers=2, progress=False)


# ---- the real Tracker ---------------------------------------------------------------------------
if HAS_TRACKING:
    from ckd_ros.runtime.base import Backend
    from ckd_ros.tracking import Tracker, TrackerParams

    class StaticBackend(Backend):
        """Score peak at the centre cell, size 1/4 of the search crop: the target stays where it was."""

        name = "static-fake"

        def infer(self, z_rgb, z_tir, x_rgb, x_tir):
            assert x_rgb.shape == (1, 3, 256, 256) and z_tir.shape == (1, 3, 128, 128)
            score = np.zeros((1, 1, 16, 16), np.float32)
            score[0, 0, 8, 8] = 0.9
            return {"score_map": score, "size_map": np.full((1, 2, 16, 16), 0.25, np.float32),
                    "offset_map": np.zeros((1, 2, 16, 16), np.float32)}


@pytest.mark.skipif(not HAS_TRACKING, reason="ckd_ros.tracking not present in this build")
def test_benchmark_command_with_the_real_tracker(tmp_path, monkeypatch, capsys):
    root = make_rgbt234(tmp_path / "ds", frames=(4, 3))
    monkeypatch.setattr(TrackerSpec, "build", lambda self: Tracker(StaticBackend(), TrackerParams()))
    results, out = tmp_path / "res", tmp_path / "out"
    args = ["benchmark", "--dataset", "rgbt234", "--root", str(root), "--results", str(results), "--out", str(out),
            "--quiet", "--no-plots", "--name", "Static"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "Static" in captured.out and "MPR" in captured.out
    assert "fps over 7 frames" in captured.err
    assert (results / "seq0.txt").read_text().splitlines() == ["30\t22\t20\t20"] * 4
    assert (out / "Static_fps.csv").is_file() and (out / "rgbt234_metrics.csv").is_file()
    assert evaluate(root, results, "rgbt234") == {"MPR": 100.0, "MSR": pytest.approx(100 * 20 / 21)}
    assert main(args) == 0  # everything finished: resumes without tracking
    assert "2 of 2 sequences already finished" in capsys.readouterr().err
