"""The runtime path imports no torch (issue 13): `ckd --help`, `ckd track --onnx`, `ckd eval`, and
opening the ONNX Runtime and TensorRT backends, run in a subprocess where `import torch` fails.
A robot that deploys an ONNX file or engine exported on a PC needs no torch."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

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
                          env={**__import__("os").environ, "CKD_DISABLE_GPU": "1", "OMP_NUM_THREADS": "1"})


def test_blocker_really_blocks(tmp_path):
    out = run_without_torch("import torch", tmp_path)
    assert out.returncode != 0 and "blocked by the test" in out.stderr


def test_help_track_eval_and_backends_without_torch(tmp_path):
    import cv2

    rgb, tir = tmp_path / "rgb", tmp_path / "tir"
    rgb.mkdir()
    tir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        img = rng.integers(0, 255, (256, 320, 3), np.uint8)
        img[100:130, 100:140] = 255
        cv2.imwrite(str(rgb / f"{i:04d}.png"), img)
        cv2.imwrite(str(tir / f"{i:04d}.png"), img[:, :, 0])
    gt = tmp_path / "gt"
    (gt / "annos").mkdir(parents=True)
    (gt / "all_dataset_lashertest.txt").write_text("a\n")
    (gt / "annos" / "a.txt").write_text("100,100,40,30\n" * 3)
    res = tmp_path / "res"
    res.mkdir()
    (res / "a.txt").write_text("100\t100\t40\t30\n" * 3)
    body = f"""
    import contextlib, io, json
    import numpy as np
    from ckd_ros.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
    assert "build-engine" in buf.getvalue() and "track" in buf.getvalue()
    assert main(["track", "--onnx", {str(DEMO_ONNX)!r}, "--rgb", {str(rgb)!r}, "--thermal", {str(tir)!r},
                 "--init", "100,100,40,30", "--out", {str(tmp_path / 'track.txt')!r}, "--quiet"]) == 0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["eval", "--dataset", "lasher", "--root", {str(gt)!r}, "--results", {str(res)!r},
                     "--json"]) == 0
    metrics = json.loads(buf.getvalue())
    assert set(metrics) == {{"PR", "NPR", "SR"}}

    from ckd_ros.runtime import open_backend
    ort = open_backend("onnxruntime", onnx={str(DEMO_ONNX)!r}, device="cpu", log=lambda m: None)
    shapes = __import__("ckd_ros.model.io_spec", fromlist=["io_shapes"]).io_shapes(ort.config)
    frame = [np.zeros(shapes[n], np.float32) for n in ("z_rgb", "z_tir", "x_rgb", "x_tir")]
    assert ort.infer(*frame)["score_map"].shape == shapes["score_map"]
    ort.close()

    class _MP:  # the bits of pytest's monkeypatch the fake GPU stack needs
        def setattr(self, obj, name, value): setattr(obj, name, value)
        def setitem(self, d, k, v): d[k] = v
        def delenv(self, name, raising=True): __import__("os").environ.pop(name, None)

    from trt_fakes import install_fake_gpu_stack, reference
    install_fake_gpu_stack(_MP(), "10.3.0", "12.6.0", "12.6")
    trt = open_backend("tensorrt", onnx={str(DEMO_ONNX)!r}, cache_dir={str(tmp_path / 'cache')!r},
                       log=lambda m: None)
    got = trt.infer(*frame)
    want = reference(*frame, shapes)
    assert all(np.allclose(got[n], want[n]) for n in want)
    trt.close()
    print("NO-TORCH-OK")
    """
    out = run_without_torch(body, REPO)
    assert out.returncode == 0 and "NO-TORCH-OK" in out.stdout, out.stderr[-3000:]
    rows = (tmp_path / "track.txt").read_text().splitlines()
    assert len(rows) == 3 and all(len(r.split()) == 4 for r in rows)
