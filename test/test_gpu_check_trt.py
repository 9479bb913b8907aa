"""benchmarks/gpu_check_trt.py: the CPU dry run prints every skip reason and exits 0; on the fake
GPU stack (test/trt_fakes.py) every check runs, so the script is ready for the first GPU."""
from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check_trt.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check_trt", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_dry_run_prints_skip_reasons_and_exits_0(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--iters", "2", "--json",
                          str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    for check in ("tensorrt fp32:", "tensorrt fp32+cuda-graph:", "tensorrt fp16:", "GIL blocking:",
                  "close() during inference:"):
        assert f"{check} skipped (--device cpu (dry run))" in out.stdout
    assert "providers really used ['CPUExecutionProvider']" in out.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["skipped"]) == 5 and data["variants"] == []


def test_every_check_runs_on_the_fake_gpu_stack(monkeypatch, tmp_path, capsys):
    import pytest

    pytest.importorskip("onnx", reason="the fake TensorRT parser reads real ONNX files (onnx not installed)")
    from trt_fakes import install_fake_gpu_stack

    install_fake_gpu_stack(monkeypatch, "10.3.0", "12.6.0", "12.6")
    mod = _load()
    rc = mod.main(["--iters", "2", "--cache-dir", str(tmp_path), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "r.json").read_text())
    assert [v["check"] for v in data["variants"]] == ["tensorrt fp32", "tensorrt fp32+cuda-graph", "tensorrt fp16"]
    # the fake engine computes another function than the model: the comparison must say so
    assert rc == 1 and out.count("MISMATCH") == 3
    fp32 = data["variants"][0]
    assert fp32["closer_finished"] and fp32["worker_finished"] and data["gil"]["inferences"] > 0
    assert "GIL: " in out and "close() during inference: returned after" in out
