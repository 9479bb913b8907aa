"""`make demo`, short: camera -> ckd_tracker on the shipped demo model -> scripted set_target, ~10 s.

Checks function, not speed: IoU > 0.5 on >= 80% of processed frames and a frame count that a busy
2-core CI machine still reaches (a few fps). The 15 fps acceptance of `make demo` is a speed figure
for an idle machine; benchmarks/ measure it, a test on shared CI cannot.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess

import cv2
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ONNX = REPO / "engines" / "demo_small.onnx"

pytestmark = pytest.mark.ros


MIN_FPS = 1.0  # holds on a 2-core machine oversubscribed 7x (measured 1.9 fps there; idle: 12-16 fps)
DURATION_S = 10


def test_demo_tracks_the_target(tmp_path):
    assert ONNX.is_file(), f"the demo model {ONNX} is missing (it ships with the repository)"
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(env.get("CKD_TEST_DOMAIN_ID") or 1 + (os.getpid() + 71) % 100)
    out = tmp_path / "demo"
    proc = subprocess.run(["bash", "scripts/demo.sh", f"duration:={DURATION_S}", f"out_dir:={out}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "==== CKD demo result ====" in proc.stdout, log
    summary = json.loads((out / "demo_summary.json").read_text())
    assert proc.returncode == 0, log
    assert summary["pass_iou"] and summary["frac_iou_gt_0_5"] >= 0.8, summary
    min_frames = int(MIN_FPS * DURATION_S * 0.8)  # the tracked part of the run
    assert summary["processed_frames"] >= min_frames, summary
    cap = cv2.VideoCapture(str(out / "demo.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= min_frames
    cap.release()


def test_demo_fails_clearly_without_a_model(tmp_path):
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(1 + (os.getpid() + 72) % 100)
    proc = subprocess.run(["bash", "scripts/demo.sh", "duration:=2", f"onnx:={tmp_path / 'none.onnx'}",
                           f"out_dir:={tmp_path / 'o'}"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "none.onnx not found" in proc.stdout + proc.stderr
