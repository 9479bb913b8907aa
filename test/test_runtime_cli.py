"""`ckd export`, `ckd build-engine`, `ckd latency` through the real dispatcher."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ckd_ros.cli import main
from ckd_ros.runtime.bench import latency_stats
from ckd_ros.runtime.gpu import probe_gpu
from conftest import shared_path


@pytest.mark.torch
def test_export_writes_onnx_and_sidecar_and_verifies(tmp_path, capsys):
    ckpt = shared_path("fixtures", "ckd_parity", "noce.pth")
    out = tmp_path / "noce.onnx"
    assert main(["export", str(ckpt), "-o", str(out), "--preset", "parity_noce", "--verify"]) == 0
    assert out.is_file()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["config"]["name"] == "parity_noce" and meta["checkpoint"]["sha256"]
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "ONNX Runtime vs PyTorch max abs error" in captured.err


TORCH = pytest.mark.torch  # export needs torch (not in the robot-Python jobs)


@pytest.mark.parametrize("argv, message", [
    pytest.param(["export", "/nonexistent/x.pth", "-o", "y.onnx"], "checkpoint not found", marks=TORCH),
    pytest.param(["export", "CKPT", "-o", "y.onnx", "--preset", "vitb9000"], "unknown model preset", marks=TORCH),
    pytest.param(["export", "CKPT", "-o", "y.onnx", "--config", "{not json"], "--config", marks=TORCH),
    (["build-engine"], "exactly one of --onnx or --checkpoint"),
    (["build-engine", "--onnx", "/nonexistent.onnx"], "not found"),
    (["latency", "--iters", "0"], "--iters"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    ckpt = str(shared_path("fixtures", "ckd_parity", "noce.pth"))
    argv = [ckpt if a == "CKPT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith(f"ckd {argv[0]}: error:")


@pytest.mark.torch
@pytest.mark.skipif(probe_gpu().available, reason="checks the no-GPU path")
def test_build_engine_without_gpu_explains(tmp_path, capsys):
    onnx_path = tmp_path / "m.onnx"
    ckpt = shared_path("fixtures", "ckd_parity", "noce.pth")
    assert main(["export", str(ckpt), "-o", str(onnx_path), "--preset", "parity_noce"]) == 0
    capsys.readouterr()
    assert main(["build-engine", "--onnx", str(onnx_path), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "needs an NVIDIA GPU" in capsys.readouterr().err


@pytest.mark.torch
def test_latency_reports_every_backend_and_machine(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    assert main(["latency", "--preset", "parity_mce", "--backend", "torch,onnxruntime,tensorrt", "--iters", "3",
                 "--warmup", "1", "--threads", "2", "--cache-dir", str(tmp_path / "c"), "--json", str(out_json)]) == 0
    table = capsys.readouterr().out
    assert "machine:" in table and "p50 ms" in table
    data = json.loads(out_json.read_text())
    rows = {r["backend"]: r for r in data["results"]}
    assert set(rows) == {"torch", "onnxruntime", "tensorrt"}
    for kind in ("torch", "onnxruntime"):
        r = rows[kind]
        assert r["n"] == 3 and 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["fps"] == pytest.approx(1e3 / r["mean_ms"])
    if not probe_gpu().available:
        assert "GPU" in rows["tensorrt"]["skipped"]
    assert data["machine"]["cpus_usable"] >= 1 and data["machine"]["versions"]["onnxruntime"]


def test_latency_stats():
    s = latency_stats([0.010] * 98 + [0.020, 0.100])
    assert s["p50_ms"] == pytest.approx(10.0) and s["p99_ms"] > 20.0
    assert s["mean_ms"] == pytest.approx(np.mean([10.0] * 98 + [20.0, 100.0]))
    assert s["fps"] == pytest.approx(1000.0 / s["mean_ms"])
    with pytest.raises(ValueError):
        latency_stats([])
