"""TensorRTEngine, the one owner of an engine, end to end on fakes of TensorRT 8.5 / 8.6 / 10.x and
cuda-python 11 / 12 / 13 (test/trt_fakes.py): requirement checks, the export mode per TensorRT
version (JetPack 5), cache key stability, build -> load -> run, rebuild of a foreign engine,
`ckd build-engine --precision int8`."""
from __future__ import annotations

import numpy as np
import pytest
from trt_fakes import CUDA_PYTHON_VERSIONS, TRT_VERSIONS, install_fake_gpu_stack, reference

from ckd_ros.errors import CheckpointError, CKDError, DependencyError
from ckd_ros.model import CKDConfig
from ckd_ros.model.io_spec import io_shapes
from ckd_ros.runtime import open_backend
from conftest import shared_path

pytestmark = pytest.mark.torch  # the models are exported here (torch); robot jobs deselect it
CFG = CKDConfig.preset("parity_mce")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The parity model exported in both modes (real exporter) + its checkpoint."""
    from ckd_ros.model import load_checkpoint
    from ckd_ros.model.export import export_onnx

    ckpt = shared_path("fixtures", "ckd_parity", "mce.pth")
    model = load_checkpoint(ckpt, CFG)
    tmp = tmp_path_factory.mktemp("trt_engine")
    out = {"checkpoint": ckpt}
    for mode in ("standard", "trt85"):
        out[mode] = tmp / f"mce-{mode}.onnx"
        export_onnx(model, out[mode], mode=mode)
    return out


def _frame(seed=0):
    rng = np.random.default_rng(seed)
    shapes = io_shapes(CFG)
    return [rng.standard_normal(shapes[n]).astype(np.float32) for n in ("z_rgb", "z_tir", "x_rgb", "x_tir")]


def _run_and_check(backend):
    frame = _frame()
    maps = backend.infer(*frame)
    want = reference(*frame, io_shapes(CFG))
    for name in want:
        np.testing.assert_allclose(maps[name], want[name], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("cuda_version", CUDA_PYTHON_VERSIONS)
@pytest.mark.parametrize("trt_version", TRT_VERSIONS)
def test_open_build_run_on_every_supported_stack(monkeypatch, tmp_path, exports, trt_version, cuda_version):
    driver = "13.0" if cuda_version.startswith("13") else "12.6"
    trt, cudart, _ = install_fake_gpu_stack(monkeypatch, trt_version, cuda_version, driver)
    onnx = exports["trt85" if trt_version.startswith("8.5") else "standard"]
    logs = []
    backend = open_backend("tensorrt", onnx=onnx, precision="fp16", cache_dir=tmp_path, cuda_graph=True,
                           log=logs.append)
    try:
        assert backend.name == "tensorrt" and "engine built" in backend.reason
        assert "FP16" in trt.state.flags
        assert bool(trt.state.pinned) == trt_version.startswith("8.5")  # decomposed norms pinned to FP32
        _run_and_check(backend)
        _run_and_check(backend)  # CUDA graph replay
    finally:
        backend.close()
    assert not cudart.device and not cudart.pinned


def test_jetpack5_tensorrt_picks_the_trt85_export_by_itself(monkeypatch, tmp_path, exports):
    trt, _, _ = install_fake_gpu_stack(monkeypatch, "8.5.2.2", "11.8.0", "11.4")
    with pytest.raises(CheckpointError, match=r"cannot parse mce-standard.onnx .*ckd export --mode trt85"):
        open_backend("tensorrt", onnx=exports["standard"], cache_dir=tmp_path)
    logs = []
    backend = open_backend("tensorrt", checkpoint=exports["checkpoint"], config=CFG, precision="fp16",
                           cache_dir=tmp_path, log=logs.append)
    try:
        _run_and_check(backend)
        assert [p.name for p in (tmp_path / "onnx").glob("*.onnx")] == [p.name for p in
                                                                      (tmp_path / "onnx").glob("*-trt85.onnx")]
        assert len(list((tmp_path / "onnx").glob("*-trt85.onnx"))) == 1
        assert trt.state.pinned and "OBEY_PRECISION_CONSTRAINTS" in trt.state.flags
    finally:
        backend.close()


def test_cache_key_does_not_depend_on_the_binding_versions(monkeypatch, tmp_path, exports):
    """Same device, new cuda-python: the cached engine is reused, not rebuilt for minutes."""
    from ckd_ros.runtime.cache import ArtifactCache
    from ckd_ros.runtime.trt_engine import TensorRTEngine

    install_fake_gpu_stack(monkeypatch, "10.3.0", "12.2.1", "12.6")
    first = TensorRTEngine(exports["standard"], ArtifactCache(tmp_path), precision="fp16", log=lambda m: None)
    path, action = first.ensure()
    assert action.startswith("built")
    install_fake_gpu_stack(monkeypatch, "10.3.0", "12.6.0", "12.6")
    again = TensorRTEngine(exports["standard"], ArtifactCache(tmp_path), precision="fp16", log=lambda m: None)
    assert again.key == first.key and again.ensure() == (path, "cached")


def test_engine_of_another_tensorrt_is_rebuilt_once(monkeypatch, tmp_path, exports):
    install_fake_gpu_stack(monkeypatch, "10.3.0")
    open_backend("tensorrt", onnx=exports["standard"], cache_dir=tmp_path, log=lambda m: None).close()
    engines = list((tmp_path / "engines").glob("*.engine"))
    data = engines[0].read_bytes().replace(b'"version": "10.3.0"', b'"version": "10.4.0"')
    engines[0].write_bytes(data)  # TensorRT returns None for a plan of another version
    logs = []
    backend = open_backend("tensorrt", onnx=exports["standard"], cache_dir=tmp_path, log=logs.append)
    try:
        _run_and_check(backend)
        assert sum(m.startswith("building TensorRT engine") for m in logs) == 1
    finally:
        backend.close()


def test_requirements_are_checked_before_anything_is_built(monkeypatch, tmp_path, exports):
    trt, _, _ = install_fake_gpu_stack(monkeypatch, "10.3.0", "13.0.1", "12.2")  # cuda-bindings 13, CUDA 12 driver
    with pytest.raises(DependencyError, match=r"cuda-python 13.0.1 incompatible with driver 12.2: "
                                              r"pip install 'cuda-python>=12.2,<12.3'"):
        open_backend("tensorrt", onnx=exports["standard"], cache_dir=tmp_path)
    assert trt.state.builds == 0


def test_build_engine_int8_cli(monkeypatch, tmp_path, capsys):
    from test_runtime_trt_build import tiny_onnx

    from ckd_ros.cli import main

    trt, _, _ = install_fake_gpu_stack(monkeypatch, "10.3.0")
    qdq = tiny_onnx(tmp_path / "q.onnx", qdq=True)
    args = ["build-engine", "--onnx", str(qdq), "--precision", "int8", "--build-only", "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    assert trt.state.flags == {"INT8", "FP16"}
    engine = capsys.readouterr().out.strip()
    assert engine.endswith(".engine") and "-int8-" in engine
    plain = tiny_onnx(tmp_path / "p.onnx")
    assert main(["build-engine", "--onnx", str(plain), "--precision", "int8", "--build-only",
                 "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ckd build-engine: error: p.onnx has no QuantizeLinear/DequantizeLinear nodes")


def test_tensorrt_without_a_gpu_names_what_is_missing(monkeypatch, tmp_path, exports):
    from ckd_ros.runtime import gpu as gpu_mod

    monkeypatch.setattr(gpu_mod, "probe_gpu", lambda: gpu_mod.GpuInfo(False, "no NVIDIA driver installed"))
    with pytest.raises(CKDError, match="TensorRT backend unusable here: no usable GPU: no NVIDIA driver installed"):
        open_backend("tensorrt", onnx=exports["standard"], cache_dir=tmp_path)
