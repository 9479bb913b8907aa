"""Backends behind one interface: ONNX Runtime == PyTorch, open_backend('auto') and its reasons, caching
of checkpoint exports, clear errors, cheap `import ckd_ros.runtime`."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ckd_ros.errors import CKDError
from ckd_ros.model import CKDConfig, load_checkpoint
from ckd_ros.runtime import open_backend
from ckd_ros.runtime.base import Backend
from ckd_ros.runtime.factory import choose_auto
from ckd_ros.runtime.gpu import GpuInfo, probe_gpu
from ckd_ros.runtime.ort_backend import OnnxRuntimeBackend, choose_providers
from ckd_ros.runtime.torch_backend import TorchBackend
from conftest import shared_path

FIXTURE_INPUTS = ("template_rgb", "template_tir", "search_rgb", "search_tir")
NO_GPU = GpuInfo(False, "cudaErrorNoDevice")
GPU = GpuInfo(True, "ok", name="Orin", compute_capability=(8, 7))


@pytest.fixture(scope="module")
def mce():
    ckpt = shared_path("fixtures", "ckd_parity", "mce.pth")
    io = dict(np.load(shared_path("fixtures", "ckd_parity", "mce_io.npz")))
    return ckpt, io, CKDConfig.preset("parity_mce")


def _sample(io, b):
    return [io[k][b:b + 1].astype(np.float32) for k in FIXTURE_INPUTS]


@pytest.fixture(scope="module")
def ort_backend(mce, tmp_path_factory):
    ckpt, _, cfg = mce
    logs = []
    backend = open_backend("onnxruntime", checkpoint=ckpt, config=cfg,
                           cache_dir=tmp_path_factory.mktemp("cache"), log=logs.append)
    yield backend, logs
    backend.close()


def test_onnxruntime_and_torch_agree_through_the_interface(mce, ort_backend):
    ckpt, io, cfg = mce
    ort_b, _ = ort_backend
    torch_b = TorchBackend(load_checkpoint(ckpt, cfg), device="cpu")
    for backend in (ort_b, torch_b):
        assert isinstance(backend, Backend) and backend.config == cfg
    for b in range(2):
        z_rgb, z_tir, x_rgb, x_tir = _sample(io, b)
        a = ort_b.infer(z_rgb, z_tir, x_rgb, x_tir)
        t = torch_b.infer(z_rgb, z_tir, x_rgb, x_tir)
        for name in ("score_map", "size_map", "offset_map"):
            assert a[name].dtype == np.float32 and a[name].shape == io[name][b:b + 1].shape
            assert np.abs(a[name] - t[name]).max() < 1e-4
            assert np.abs(a[name] - io[name][b:b + 1]).max() < 1e-4
        # template once, then frames: same maps as infer()
        for backend, full in ((ort_b, a), (torch_b, t)):
            backend.set_template(z_rgb, z_tir)
            again = backend.infer_search(x_rgb, x_tir)
            np.testing.assert_allclose(again["score_map"], full["score_map"], atol=1e-6)
    torch_b.close()


def test_checkpoint_export_is_cached_and_reported(mce, ort_backend, tmp_path):
    ckpt, _, cfg = mce
    backend, logs = ort_backend
    assert backend.name == "onnxruntime" and backend.reason == "requested onnxruntime"
    assert backend.onnx_path.parent.name == "onnx" and "mce" in backend.onnx_path.name
    assert any("building ONNX export" in m for m in logs)
    assert "onnxruntime" in backend.describe() and "CPUExecutionProvider" in backend.describe()
    logs2 = []
    again = open_backend("onnxruntime", checkpoint=ckpt, config=cfg, cache_dir=backend.onnx_path.parents[1],
                         log=logs2.append)
    assert again.onnx_path == backend.onnx_path
    assert not any("building" in m for m in logs2)
    again.close()


def test_auto_picks_and_says_why(mce, tmp_path):
    ckpt, io, cfg = mce
    logs = []
    backend = open_backend("auto", checkpoint=ckpt, config=cfg, cache_dir=tmp_path, log=logs.append)
    try:
        gpu = probe_gpu()
        if not gpu.available:
            assert backend.name == "onnxruntime"
            assert "no usable GPU" in backend.reason and gpu.reason in backend.reason
            assert "picked ONNX Runtime" in backend.reason
        assert any(backend.reason in m for m in logs)
        maps = backend.infer(*_sample(io, 0))
        assert np.abs(maps["score_map"] - io["score_map"][0:1]).max() < 1e-4
    finally:
        backend.close()


@pytest.mark.skipif(probe_gpu().available, reason="checks the CPU fallback")
def test_auto_with_fp16_falls_back_to_fp32_on_cpu(ort_backend):
    backend, _ = ort_backend
    auto = open_backend("auto", onnx=backend.onnx_path, precision="fp16")
    assert auto.name == "onnxruntime" and auto.precision == "fp32" and "running fp32" in auto.reason
    auto.close()


def test_choose_auto_decisions():
    assert choose_auto(GPU, [], True, True)[0] == "tensorrt"
    missing = ["GPU present, cuda-python 13.0.1 incompatible with driver 12.2: pip install 'cuda-python>=12.2,<12.3'"]
    kind, why = choose_auto(GPU, missing, True, True)
    assert kind == "onnxruntime" and why == f"auto: TensorRT not usable ({missing[0]}); picked ONNX Runtime"
    assert "\n" not in why
    kind, why = choose_auto(NO_GPU, ["no usable GPU: cudaErrorNoDevice"], True, True)
    assert kind == "onnxruntime" and "cudaErrorNoDevice" in why
    assert choose_auto(NO_GPU, ["no usable GPU: x"], False, True)[0] == "torch"
    with pytest.raises(CKDError, match="no backend"):
        choose_auto(NO_GPU, ["no usable GPU: x"], False, False)


def test_auto_checks_every_tensorrt_requirement_before_choosing_it(ort_backend, monkeypatch):
    """A GPU and TensorRT but a cuda-python that cannot talk to the driver: auto must not build for
    minutes and fail; it picks ONNX Runtime and says why in one line."""
    from trt_fakes import FakeCudart

    from ckd_ros.runtime import gpu as gpu_mod

    backend, _ = ort_backend
    gpu = GpuInfo(True, "driver", name="Orin", compute_capability=(8, 7), driver_version="12.2", source="driver")
    monkeypatch.setattr(gpu_mod, "probe_gpu", lambda: gpu)
    monkeypatch.setattr(gpu_mod, "cuda_python_version", lambda: "13.0.1")
    from ckd_ros.runtime import cuda_mem

    monkeypatch.setattr(cuda_mem, "import_cudart", lambda: FakeCudart("13.0.1", driver="12.2"))
    auto = open_backend("auto", onnx=backend.onnx_path, device="cpu", trt_module="json")  # an importable module
    try:
        assert auto.name == "onnxruntime"
        assert "cuda-python 13.0.1 incompatible with driver 12.2: pip install 'cuda-python>=12.2,<12.3'" in auto.reason
        assert "picked ONNX Runtime" in auto.reason
    finally:
        auto.close()


class _FallbackOrt:
    """onnxruntime whose CUDA provider silently fails to start (missing libcudnn): the session runs on
    the CPU and get_providers() says so."""

    def __init__(self, ort):
        self._ort = ort
        self.requested = None

    def __getattr__(self, name):
        return getattr(self._ort, name)

    def get_available_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def InferenceSession(self, path, sess_options=None, providers=None):  # noqa: N802 (onnxruntime's name)
        self.requested = providers
        return self._ort.InferenceSession(path, sess_options=sess_options, providers=["CPUExecutionProvider"])


def test_onnxruntime_provider_truth(ort_backend, monkeypatch):
    import onnxruntime

    from ckd_ros.runtime import ort_backend as ort_mod

    backend, _ = ort_backend
    fake = _FallbackOrt(onnxruntime)
    monkeypatch.setattr(ort_mod, "import_onnxruntime", lambda: fake)
    with pytest.raises(CKDError, match="could not start CUDAExecutionProvider and fell back to CPUExecutionProvider"):
        OnnxRuntimeBackend(backend.onnx_path, device="cuda", gpu_ok=True)
    assert fake.requested[0] == ("CUDAExecutionProvider", {"device_id": 0, "use_tf32": 0})  # FP32 is FP32
    logs = []
    auto = OnnxRuntimeBackend(backend.onnx_path, device="auto", gpu_ok=True, log=logs.append)
    assert auto.providers == ["CPUExecutionProvider"]
    assert "fell back to CPUExecutionProvider" in auto.reason and "fell back" in logs[0]
    assert "CPUExecutionProvider" in auto.describe()
    auto.close()


def test_onnx_only_source_reads_config_from_metadata(ort_backend, mce):
    backend, _ = ort_backend
    from_onnx = open_backend("onnxruntime", onnx=backend.onnx_path)
    assert from_onnx.config == mce[2]
    from_onnx.close()
    with pytest.raises(CKDError, match="needs a checkpoint"):
        open_backend("torch", onnx=backend.onnx_path)


@pytest.mark.skipif(probe_gpu().available, reason="checks the no-GPU error")
def test_tensorrt_without_gpu_is_a_clear_error(ort_backend):
    backend, _ = ort_backend
    with pytest.raises(CKDError, match="TensorRT backend unusable here: no usable GPU"):
        open_backend("tensorrt", onnx=backend.onnx_path)


def test_bad_requests_are_ckd_errors(tmp_path, ort_backend):
    backend, _ = ort_backend
    with pytest.raises(CKDError, match="unknown backend"):
        open_backend("cuda-magic", onnx=backend.onnx_path)
    with pytest.raises(CKDError, match="precision"):
        open_backend("onnxruntime", onnx=backend.onnx_path, precision="int4")
    with pytest.raises(CKDError, match="not found"):
        open_backend("onnxruntime", checkpoint=tmp_path / "missing.pth")
    with pytest.raises(CKDError, match="needs a checkpoint, an ONNX file or a model"):
        open_backend("auto")
    with pytest.raises(CKDError, match="fp16"):
        open_backend("onnxruntime", onnx=backend.onnx_path, precision="fp16", device="cpu")
    with pytest.raises(CKDError, match="x_rgb has shape"):
        backend.infer(*[np.zeros((1, 3, 128, 128), np.float32)] * 2, *[np.zeros((1, 3, 64, 64), np.float32)] * 2)
    with pytest.raises(CKDError, match="do not match the model config"):
        OnnxRuntimeBackend(backend.onnx_path, config=CKDConfig.preset("parity_mce").replace(search_size=320),
                           gpu_ok=False)


def test_cpu_wheel_beside_the_gpu_wheel_is_named(monkeypatch):
    from ckd_ros.runtime import ort_backend as ort_mod

    monkeypatch.setattr(ort_mod, "_both_wheels_installed", lambda: True)
    prov, why = choose_providers(["CPUExecutionProvider"], "auto", "fp32", gpu_ok=True)
    assert prov == ["CPUExecutionProvider"] and "hides the CUDA provider" in why
    with pytest.raises(CKDError, match="pip uninstall -y onnxruntime onnxruntime-gpu"):
        choose_providers(["CPUExecutionProvider"], "cuda", "fp32", gpu_ok=True)


def test_onnxruntime_provider_choice():
    cpu_only = ["CPUExecutionProvider"]
    gpu_ort = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(cpu_only, None, "fp32", gpu_ok=True)[0] == ["CPUExecutionProvider"]
    prov, why = choose_providers(gpu_ort, "auto", "fp32", gpu_ok=True)
    assert prov[0][0] == "CUDAExecutionProvider" and prov[-1] == "CPUExecutionProvider"
    assert prov[0][1]["use_tf32"] == 0  # TF32 is not FP32
    assert "use_tf32" not in choose_providers(gpu_ort, "tensorrt", "fp16", gpu_ok=True)[0][1][1]
    assert choose_providers(gpu_ort, "auto", "fp32", gpu_ok=False)[0] == ["CPUExecutionProvider"]
    prov, _ = choose_providers(gpu_ort, "tensorrt", "fp16", gpu_ok=True, trt_cache_dir="/c")
    assert prov[0][0] == "TensorrtExecutionProvider" and prov[0][1]["trt_fp16_enable"] is True
    assert prov[0][1]["trt_engine_cache_path"] == "/c"
    assert choose_providers(gpu_ort, "cuda:1", "fp32", gpu_ok=True)[0][0][1]["device_id"] == 1
    with pytest.raises(CKDError, match="CUDAExecutionProvider"):
        choose_providers(cpu_only, "cuda", "fp32", gpu_ok=True)
    with pytest.raises(CKDError, match="unknown onnxruntime device"):
        choose_providers(cpu_only, "npu", "fp32", gpu_ok=True)


def test_import_runtime_is_cheap():
    code = ("import sys, ckd_ros.runtime as r; r.open_backend; r.Backend; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'tensorrt', 'tensorrt_rtx', 'onnx') if m in sys.modules]; "
            "assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
