"""benchmarks/gpu_check.sh dry run on the CPU: the same code paths as on a GPU, exit 0 and JSON written.

A functional test (no speed is asserted): full-size vitb_mce and vitb with random weights, eager FP32/BF16,
the tracker loop, and every GPU-only row skipped with its reason.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.torch  # the GPU check measures PyTorch first: not in the torch-free robot venvs
def test_gpu_check_cpu_dry_run(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--device", "cpu", "--iters", "2", "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = {(r["model"], r["mode"], r["precision"]): r for r in data["results"]}
    for model in ("vitb_mce", "vitb"):
        for key in ((model, "eager", "fp32"), (model, "eager", "bf16"), (model, "tracker", "fp32")):
            assert "skipped" not in rows[key], rows[key]
            assert rows[key]["fps"] > 0 and rows[key]["n"] == 2
        assert rows[(model, "eager", "fp32")]["paper_fps"] == {"vitb_mce": 96.4, "vitb": 84.8}[model]
        assert "CUDA" in rows[(model, "cuda-graph", "fp32")]["skipped"]
        assert rows[(model, "tracker", "fp32")]["inference_ms"] > 0
    trt = [r for r in data["results"] if r["mode"] == "tensorrt"]
    assert trt and all("skipped" in r or "check" in r for r in trt)  # rows of gpu_check_trt.py, or why not
    assert data["device"] == "cpu" and data["machine"]["cpus_usable"] >= 1
    assert "vitb_mce  eager" in proc.stdout and "JSON" in proc.stdout
