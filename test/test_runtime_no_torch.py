"""Opening the ONNX Runtime and TensorRT backends imports no torch (issue 13), with torch made
unimportable in a subprocess. `ckd --help`, `ckd track --onnx`, `ckd eval` and the node are covered
by test_torch_free.py; this covers open_backend itself, TensorRT included (on the fake GPU stack of
test/trt_fakes.py: the build, cache, load and run path, not only the import)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_ONNX = REPO / "engines" / "demo_small.onnx"

BLOCK_TORCH = textwrap.dedent("""
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is not installed here (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoTorch())
    sys.path.insert(0, {test_dir!r})
""").format(test_dir=str(Path(__file__).parent))


def run_without_torch(body: str, cwd) -> subprocess.CompletedProcess:
    code = BLOCK_TORCH + textwrap.dedent(body) + "\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "CKD_DISABLE_GPU": "1", "OMP_NUM_THREADS": "1"})


def test_blocker_really_blocks(tmp_path):
    out = run_without_torch("import torch", tmp_path)
    assert out.returncode != 0 and "blocked by the test" in out.stderr


FRAME = f"""
    import numpy as np
    from ckd_ros.model.io_spec import INPUT_NAMES, io_shapes
    from ckd_ros.runtime import open_backend
    from ckd_ros.model.config_source import resolve_config

    shapes = io_shapes(resolve_config(onnx={str(DEMO_ONNX)!r}))
    frame = [np.zeros(shapes[n], np.float32) for n in INPUT_NAMES]
"""


def test_onnxruntime_backend_without_torch():
    body = FRAME + f"""
    ort = open_backend("onnxruntime", onnx={str(DEMO_ONNX)!r}, device="cpu", log=lambda m: None)
    assert ort.infer(*frame)["score_map"].shape == shapes["score_map"]
    ort.close()
    print("NO-TORCH-OK")
    """
    out = run_without_torch(body, REPO)
    assert out.returncode == 0 and "NO-TORCH-OK" in out.stdout, out.stderr[-3000:]


def test_tensorrt_backend_without_torch(tmp_path):
    pytest.importorskip("onnx", reason="the fake TensorRT parser reads real ONNX files (onnx not installed)")
    body = FRAME + f"""
    class _MP:  # the bits of pytest's monkeypatch the fake GPU stack needs
        def setattr(self, obj, name, value): setattr(obj, name, value)
        def setitem(self, d, k, v): d[k] = v
        def delenv(self, name, raising=True): __import__("os").environ.pop(name, None)

    from trt_fakes import install_fake_gpu_stack, reference
    install_fake_gpu_stack(_MP(), "10.3.0", "12.6.0", "12.6")
    trt = open_backend("tensorrt", onnx={str(DEMO_ONNX)!r}, cache_dir={str(tmp_path / 'cache')!r},
                       precision="fp16", cuda_graph=True, log=lambda m: None)
    for _ in range(2):
        got = trt.infer(*frame)
        want = reference(*frame, shapes)
        assert all(np.allclose(got[n], want[n]) for n in want)
    trt.close()
    print("NO-TORCH-OK")
    """
    out = run_without_torch(body, REPO)
    assert out.returncode == 0 and "NO-TORCH-OK" in out.stdout, out.stderr[-3000:]
