"""`make demo`, short: camera -> ckd_tracker on the shipped demo model -> scripted set_target, ~10 s.

Runs scripts/demo.sh with check:=true, so it fails unless the run meets the demo acceptance:
IoU > 0.5 on >= 80% of processed frames and >= 15 fps through the ROS pipeline on this CPU.
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


def test_demo_tracks_in_real_time(tmp_path):
    assert ONNX.is_file(), f"the demo model {ONNX} is missing (it ships with the repository)"
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(env.get("CKD_TEST_DOMAIN_ID") or 1 + (os.getpid() + 71) % 100)
    out = tmp_path / "demo"
    proc = subprocess.run(["bash", "scripts/demo.sh", "duration:=10", "check:=true", f"out_dir:={out}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "==== CKD demo result ====" in proc.stdout, log
    summary = json.loads((out / "demo_summary.json").read_text())
    assert proc.returncode == 0, log
    assert summary["passed"], summary
    assert summary["frac_iou_gt_0_5"] >= 0.8 and summary["fps"] >= 15.0
    assert summary["processed_frames"] >= 100  # 10 s at ~20 Hz
    cap = cv2.VideoCapture(str(out / "demo.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= 100
    cap.release()


def test_demo_fails_clearly_without_a_model(tmp_path):
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(1 + (os.getpid() + 72) % 100)
    proc = subprocess.run(["bash", "scripts/demo.sh", "duration:=2", f"onnx:={tmp_path / 'none.onnx'}",
                           f"out_dir:={tmp_path / 'o'}"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "none.onnx not found" in proc.stdout + proc.stderr
