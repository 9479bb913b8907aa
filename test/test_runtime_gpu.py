"""GPU probe: never imports torch, orders its sources, parses driver tools, explains a missing GPU."""
from __future__ import annotations

import subprocess
import sys
import types

from ckd_ros.runtime import gpu as gpu_mod
from ckd_ros.runtime.gpu import GpuInfo, parse_nvidia_smi_csv, probe_gpu_uncached


def test_probe_never_imports_torch_or_tensorrt():
    code = ("import sys; from ckd_ros.runtime.gpu import probe_gpu; info = probe_gpu(); "
            "assert isinstance(info.available, bool) and info.reason; "
            "bad = [m for m in ('torch', 'tensorrt', 'tensorrt_rtx', 'onnxruntime') if m in sys.modules]; "
            "assert not bad, bad; print(info.describe())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("CKD_DISABLE_GPU", "1")
    info = probe_gpu_uncached()
    assert not info.available and "CKD_DISABLE_GPU" in info.reason


def _fake_cudart(count=1, err_name="cudaSuccess"):
    class Err(int):
        name = err_name

    ok = Err(0 if err_name == "cudaSuccess" else 35)
    props = types.SimpleNamespace(name=b"Orin\x00\x00junk", major=8, minor=7)
    return types.SimpleNamespace(
        cudaError_t=types.SimpleNamespace(cudaSuccess=0),
        cudaGetDeviceCount=lambda: (ok, count),
        cudaGetDeviceProperties=lambda dev: (Err(0), props),
        cudaDriverGetVersion=lambda: (Err(0), 12020),
        cudaRuntimeGetVersion=lambda: (Err(0), 12040),
    )


def test_cuda_python_probe_reads_properties():
    info = gpu_mod.probe_cuda_python(_fake_cudart())
    assert info.available and info.name == "Orin" and info.compute_capability == (8, 7)
    assert (info.driver_version, info.runtime_version, info.sm) == ("12.2", "12.4", "8.7")
    assert "Orin" in info.describe() and "sm 8.7" in info.describe()


def test_cuda_python_probe_reports_why_not():
    info = gpu_mod.probe_cuda_python(_fake_cudart(err_name="cudaErrorInsufficientDriver"))
    assert not info.available and "cudaErrorInsufficientDriver" in info.reason
    info = gpu_mod.probe_cuda_python(_fake_cudart(count=0))
    assert not info.available and "0 devices" in info.reason


def test_probe_order_first_answer_wins_and_missing_sources_are_named(monkeypatch):
    monkeypatch.delenv("CKD_DISABLE_GPU", raising=False)

    def probe_cuda_python():
        return None  # cuda-python not installed

    def probe_nvidia_smi():
        return GpuInfo(True, "smi", name="NVIDIA A2", source="nvidia-smi")

    def probe_proc():
        raise AssertionError("must not be asked after nvidia-smi answered")

    info = probe_gpu_uncached((probe_cuda_python, probe_nvidia_smi, probe_proc))
    assert info.available and info.source == "nvidia-smi"

    def none():
        return None

    none.__name__ = "probe_everything"
    info = probe_gpu_uncached((none,))
    assert not info.available and "everything" in info.reason


def test_nvidia_smi_parsing_and_fallback_for_old_drivers():
    rows = parse_nvidia_smi_csv("NVIDIA GeForce RTX 4090, 8.9, 550.54.14\nTesla T4, 7.5, 550.54.14\n")
    assert rows == [("NVIDIA GeForce RTX 4090", (8, 9), "550.54.14"), ("Tesla T4", (7, 5), "550.54.14")]
    calls = []

    def run(cmd):
        calls.append(cmd)
        if "compute_cap" in cmd[1]:
            return 2, "Field \"compute_cap\" is not a valid field to query."
        return 0, "Tesla T4, 470.82.01\n"

    info = gpu_mod.probe_nvidia_smi(run)
    assert len(calls) == 2 and info.available and info.name == "Tesla T4"
    assert info.compute_capability is None and info.driver_version == "470.82.01"
    info = gpu_mod.probe_nvidia_smi(lambda cmd: (9, "NVIDIA-SMI has failed because it couldn't communicate"))
    assert not info.available and "couldn't communicate" in info.reason


def test_proc_driver_probe(tmp_path):
    assert gpu_mod.probe_proc(str(tmp_path / "absent")) is None
    root = tmp_path / "nvidia"
    (root / "gpus" / "0000:01:00.0").mkdir(parents=True)
    (root / "version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22\n")
    (root / "gpus" / "0000:01:00.0" / "information").write_text("Model: \t\t NVIDIA A10\nIRQ: 1\n")
    info = gpu_mod.probe_proc(str(root))
    assert info.available and info.name == "NVIDIA A10" and info.driver_version == "550.54.14"
    empty = tmp_path / "empty"
    (empty / "gpus").mkdir(parents=True)
    assert not gpu_mod.probe_proc(str(empty)).available


def test_this_machine_gives_a_reason_when_there_is_no_gpu():
    info = probe_gpu_uncached()
    if not info.available:
        assert info.reason and "no GPU" in info.describe()
    else:
        assert info.name
