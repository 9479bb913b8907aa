"""GPU probe: never imports torch, orders its sources, parses driver tools, explains a missing GPU."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import types

from trt_fakes import FakeCudart, FakeLibcuda

from ckd_ros.runtime import gpu as gpu_mod
from ckd_ros.runtime.gpu import GpuInfo, parse_nvidia_smi_csv, probe_gpu_uncached


def test_probe_never_imports_torch_tensorrt_or_cuda_python():
    code = ("import sys; from ckd_ros.runtime.gpu import probe_gpu; info = probe_gpu(); "
            "assert isinstance(info.available, bool) and info.reason; "
            "bad = [m for m in ('torch', 'tensorrt', 'tensorrt_rtx', 'onnxruntime', 'cuda') if m in sys.modules]; "
            "assert not bad, bad; print(info.describe())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("CKD_DISABLE_GPU", "1")
    info = probe_gpu_uncached()
    assert not info.available and "CKD_DISABLE_GPU" in info.reason


def test_driver_probe_reads_identity_through_libcuda():
    info = gpu_mod.probe_driver(FakeLibcuda(driver=12020, name=b"Orin", cc=(8, 7), sms=16))
    assert info.available and info.name == "Orin" and info.compute_capability == (8, 7)
    assert (info.driver_version, info.sm, info.sm_count, info.source) == ("12.2", "8.7", 16, "driver")
    assert "Orin" in info.describe() and "sm 8.7" in info.describe() and "driver CUDA 12.2" in info.describe()


def test_driver_probe_reports_why_not():
    info = gpu_mod.probe_driver(FakeLibcuda(init_rc=100))
    assert not info.available and "CUDA_ERROR_NO_DEVICE" in info.reason
    info = gpu_mod.probe_driver(FakeLibcuda(count=0))
    assert not info.available and "0 devices" in info.reason


def test_cuda_python_13_on_a_cuda_12_driver_is_gpu_present_not_no_gpu(monkeypatch):
    """torch 2.13 brings cuda-bindings 13 (needs driver >= 580). The GPU is there: the probe says so,
    and only the TensorRT runner's requirement check names the incompatible binding and the fix."""
    monkeypatch.setattr(gpu_mod, "load_libcuda", lambda: FakeLibcuda(driver=12020))
    monkeypatch.delenv("CKD_DISABLE_GPU", raising=False)
    info = probe_gpu_uncached()
    assert info.available and info.driver_version == "12.2"
    problem = gpu_mod.check_cuda_python(info, FakeCudart("13.0.1", driver="12.2"), version="13.0.1")
    assert problem == ("GPU present, cuda-python 13.0.1 incompatible with driver 12.2: "
                       "pip install 'cuda-python>=12.2,<12.3'")
    # even when the major versions cannot be compared, the runtime's own answer is used
    problem = gpu_mod.check_cuda_python(info, FakeCudart("13.0.1", driver="12.2"), version="?")
    assert problem.startswith("GPU present, cuda-python ? incompatible with driver 12.2")
    assert gpu_mod.check_cuda_python(info, FakeCudart("12.2.1", driver="12.2"), version="12.2.1") is None
    assert gpu_mod.check_cuda_python(info, FakeCudart("11.8.0", driver="12.2"), version="11.8.0") is None


def test_install_hints_match_driver_and_jetpack():
    jp6 = GpuInfo(True, "t", driver_version="12.6", l4t_release="R36.4.0")
    jp5 = GpuInfo(True, "t", driver_version="11.4", l4t_release="R35.4.1")
    desk = GpuInfo(True, "t", driver_version="12.4")
    assert gpu_mod.cuda_python_hint(jp6) == "pip install 'cuda-python>=12.6,<12.7'"  # not 12.9
    assert gpu_mod.cuda_python_hint(jp5) == "pip install 'cuda-python>=11.5,<12'"  # PyPI's oldest 11.x
    assert "python3-libnvinfer" in gpu_mod.tensorrt_hint(jp6)
    assert gpu_mod.tensorrt_hint(desk) == "pip install 'tensorrt-cu12<11'"  # not TensorRT 11 / CUDA 13
    assert gpu_mod.tensorrt_hint(GpuInfo(True, "t", driver_version="13.0")) == "pip install 'tensorrt-cu13'"


def test_tensorrt_problems_lists_everything_missing(monkeypatch):
    gpu = GpuInfo(True, "t", name="RTX", driver_version="12.4")
    monkeypatch.setattr(gpu_mod, "installed_tensorrt_cuda_major", lambda: 13)
    monkeypatch.setitem(sys.modules, "ckd_fake_trt", types.ModuleType("ckd_fake_trt"))
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "ckd_fake_trt" else None)
    problems = gpu_mod.tensorrt_problems(gpu, "ckd_fake_trt", cudart=FakeCudart("13.0.1", driver="12.4"))
    assert len(problems) == 2
    assert "built for CUDA 13" in problems[0] and "tensorrt-cu12<11" in problems[0]
    assert "cuda-python" in problems[1] and "'cuda-python>=12.4,<12.5'" in problems[1]
    assert gpu_mod.tensorrt_problems(GpuInfo(False, "nothing here"), "tensorrt") == ["no usable GPU: nothing here"]


def test_device_identity_is_the_same_whatever_answered():
    a = GpuInfo(True, "driver", name="Orin", compute_capability=(8, 7), driver_version="12.2", sm_count=16,
                source="driver", l4t_release="R36.3.0", jetson_model="NVIDIA Jetson AGX Orin")
    b = dataclasses.replace(a, reason="again", source="other", device_count=1)
    assert gpu_mod.device_identity(a) == gpu_mod.device_identity(b)
    assert gpu_mod.device_identity(a) == {"gpu_name": "Orin", "compute_capability": "8.7", "sm_count": "16",
                                          "jetson_model": "NVIDIA Jetson AGX Orin", "cuda_driver": "12.2",
                                          "l4t_release": "R36.3.0"}


def test_jetson_model_from_the_device_tree(tmp_path):
    p = tmp_path / "model"
    p.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\0")
    assert gpu_mod.read_jetson_model(str(p)) == "NVIDIA Jetson AGX Orin Developer Kit"
    p.write_bytes(b"Raspberry Pi 5\0")
    assert gpu_mod.read_jetson_model(str(p)) is None
    assert gpu_mod.read_jetson_model(str(tmp_path / "absent")) is None


def test_probe_order_first_answer_wins_and_missing_sources_are_named(monkeypatch):
    monkeypatch.delenv("CKD_DISABLE_GPU", raising=False)

    def probe_driver():
        return None  # libcuda.so.1 not loadable

    def probe_nvidia_smi():
        return GpuInfo(True, "smi", name="NVIDIA A2", source="nvidia-smi")

    def probe_proc():
        raise AssertionError("must not be asked after nvidia-smi answered")

    info = probe_gpu_uncached((probe_driver, probe_nvidia_smi, probe_proc))
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
    # a GPU is listed, but without libcuda.so.1 (why nvidia-smi was asked) TensorRT cannot use it
    assert len(calls) == 2 and not info.available and info.name == "Tesla T4" and "libcuda.so.1" in info.reason
    assert info.compute_capability is None and info.kernel_driver == "470.82.01"
    info = gpu_mod.probe_nvidia_smi(lambda cmd: (9, "NVIDIA-SMI has failed because it couldn't communicate"))
    assert not info.available and "couldn't communicate" in info.reason


def test_proc_driver_probe(tmp_path):
    assert gpu_mod.probe_proc(str(tmp_path / "absent")) is None
    root = tmp_path / "nvidia"
    (root / "gpus" / "0000:01:00.0").mkdir(parents=True)
    (root / "version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22\n")
    (root / "gpus" / "0000:01:00.0" / "information").write_text("Model: \t\t NVIDIA A10\nIRQ: 1\n")
    info = gpu_mod.probe_proc(str(root))
    assert not info.available and info.name == "NVIDIA A10" and info.kernel_driver == "550.54.14"
    assert "libcuda.so.1" in info.reason
    empty = tmp_path / "empty"
    (empty / "gpus").mkdir(parents=True)
    assert not gpu_mod.probe_proc(str(empty)).available


def test_this_machine_gives_a_reason_when_there_is_no_gpu():
    info = probe_gpu_uncached()
    if not info.available:
        assert info.reason and "no GPU" in info.describe()
    else:
        assert info.name
