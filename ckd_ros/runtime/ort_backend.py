"""ONNX Runtime backend: CPU, CUDA or TensorRT execution providers, whichever are installed.

device: None/"auto" (CUDA when the provider and a GPU are present, else CPU), "cpu", "cuda[:N]",
or "tensorrt" (ORT's TensorRT provider; its engines go to the ckd_ros cache dir, not the cwd).

Provider truth (issue 17.8): ONNX Runtime silently falls back to another provider when a provider
option is rejected or CUDA/cuDNN/TensorRT libraries are missing. After creating the session the
backend compares `get_providers()` with what it asked for: an explicitly requested provider that did
not start is an error; under `auto` the reason says what really runs. `providers` is the truth.
FP32 is true FP32: the CUDA provider gets `use_tf32=0`, the TensorRT provider (no option of its own)
runs with NVIDIA_TF32_OVERRIDE=0, which TensorRT, cuBLAS and cuDNN honour.
"""
from __future__ import annotations

import os
import pathlib
from typing import List, Optional, Tuple

import numpy as np

from ckd_ros.errors import BackendError, CheckpointError, CKDError, DependencyError, ParameterError, unreadable_onnx
from ckd_ros.model.io_spec import INPUT_NAMES, OUTPUT_NAMES, io_shapes
from ckd_ros.runtime.base import Backend, Maps
from ckd_ros.runtime.cache import as_log

GPU_WHEEL_HINT = ("pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu "
                  "(the CPU package installed beside it hides the CUDA provider)")


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise DependencyError(f"onnxruntime is not installed ({exc}): pip install onnxruntime") from exc
    return onnxruntime


def _both_wheels_installed() -> bool:
    import importlib.metadata

    found = 0
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(dist)
            found += 1
        except importlib.metadata.PackageNotFoundError:
            pass
    return found == 2


def _provider_name(p) -> str:
    return p if isinstance(p, str) else p[0]


def check_providers(requested: list, actual: List[str], explicit: bool) -> str:
    """'' when the first requested provider runs; otherwise a one-line note of what runs instead.
    BackendError when the provider was requested explicitly (device=cuda/tensorrt)."""
    want = _provider_name(requested[0])
    if want in actual:
        return ""
    note = (f"onnxruntime could not start {want} and fell back to {actual[0] if actual else 'nothing'} "
            "(CUDA/cuDNN/TensorRT libraries missing or a provider option rejected; see onnxruntime's log)")
    if _both_wheels_installed():
        note += f"; {GPU_WHEEL_HINT}"
    if explicit:
        raise BackendError(note)
    return note


def choose_providers(available: List[str], device: Optional[str], precision: str, gpu_ok: bool,
                     trt_cache_dir: Optional[str] = None) -> Tuple[list, str]:
    """(providers for InferenceSession, why). Pure function of what is installed, for testing."""
    device = (device or "auto").lower()
    dev_id = 0
    if device.startswith("cuda:"):
        device, dev_id = "cuda", int(device.split(":", 1)[1])
    cpu = "CPUExecutionProvider"
    cuda_opts = {"device_id": dev_id}
    if precision == "fp32":
        cuda_opts["use_tf32"] = 0  # the CUDA provider uses TF32 on Ampere+ unless told not to
    cuda = ("CUDAExecutionProvider", cuda_opts)
    if device == "cpu":
        return [cpu], "device=cpu"
    if device == "auto":
        if "CUDAExecutionProvider" in available and gpu_ok:
            return [cuda, cpu], "CUDA provider and a GPU present"
        why = "no GPU" if not gpu_ok else "CUDA provider not installed" + (
            f": {GPU_WHEEL_HINT}" if _both_wheels_installed() else "")
        return [cpu], f"CPU ({why})"
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise DependencyError("onnxruntime has no CUDAExecutionProvider here: "
                                  + (GPU_WHEEL_HINT if _both_wheels_installed() else "pip install onnxruntime-gpu"))
        return [cuda, cpu], "device=cuda"
    if device == "tensorrt":
        if "TensorrtExecutionProvider" not in available:
            raise DependencyError("onnxruntime has no TensorrtExecutionProvider here (needs onnxruntime-gpu + "
                                  "TensorRT)")
        opts = {"device_id": dev_id, "trt_fp16_enable": precision == "fp16"}
        if trt_cache_dir:
            opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=trt_cache_dir,
                        trt_timing_cache_enable=True, trt_timing_cache_path=trt_cache_dir)
        return [("TensorrtExecutionProvider", opts), cuda, cpu], "device=tensorrt"
    raise ParameterError(f"unknown onnxruntime device {device!r} (auto, cpu, cuda[:N], tensorrt)")


def session_error(onnx_path, exc: Exception) -> CKDError:
    """The CKDError for an InferenceSession that could not be created (one line, what to do)."""
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    kind = type(exc).__name__
    if kind == "InvalidProtobuf" or "protobuf parsing failed" in detail.lower():
        return unreadable_onnx(onnx_path, kind)
    if kind in ("NoSuchFile", "NotFound"):
        return CheckpointError(f"ONNX file not found: {onnx_path}")
    return BackendError(f"onnxruntime could not load {onnx_path} ({kind}: {detail}); re-export it with "
                        "`ckd export` for this onnxruntime version, or try another --backend")


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, onnx_path, *, config=None, device: Optional[str] = None, precision: str = "fp32",
                 threads: Optional[int] = None, trt_cache_dir=None, gpu_ok: Optional[bool] = None,
                 log=None, reason: str = ""):
        super().__init__()
        ort = import_onnxruntime()
        self._log = as_log(log)
        self.onnx_path = pathlib.Path(onnx_path)
        if not self.onnx_path.is_file():
            raise CheckpointError(f"ONNX file not found: {self.onnx_path}")
        if gpu_ok is None:
            from ckd_ros.runtime.gpu import probe_gpu

            gpu_ok = probe_gpu().available
        providers, why = choose_providers(ort.get_available_providers(), device, precision, gpu_ok,
                                          str(trt_cache_dir) if trt_cache_dir else None)
        first = _provider_name(providers[0])
        if precision == "fp16" and first != "TensorrtExecutionProvider":
            raise ParameterError("onnxruntime runs the fp32 graph; fp16 needs device='tensorrt' or the TensorRT "
                                 "backend")
        if first == "TensorrtExecutionProvider":
            if trt_cache_dir:
                os.makedirs(trt_cache_dir, exist_ok=True)
            if precision == "fp32":
                os.environ["NVIDIA_TF32_OVERRIDE"] = "0"  # the TensorRT provider has no TF32 option
        if precision == "int8":
            from ckd_ros.runtime.quantize import is_int8

            if not is_int8(self.onnx_path):
                raise ParameterError(f"precision int8 needs an INT8 ONNX file: run `ckd quantize {self.onnx_path}` "
                                     "and load its output")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        elif os.environ.get("OMP_NUM_THREADS"):
            opts.intra_op_num_threads = int(os.environ["OMP_NUM_THREADS"])
        try:
            self._session = ort.InferenceSession(str(self.onnx_path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail...)
            raise session_error(self.onnx_path, exc) from exc
        self.providers = list(self._session.get_providers())
        explicit = (device or "auto").lower() not in ("auto", "cpu")
        note = check_providers(providers, self.providers, explicit)
        self.config, self.precision = config, precision
        self.reason = reason or why
        if note:
            self.reason = f"{self.reason}; {note}"
            self._log(note)
        self._check_io()

    def _check_io(self) -> None:
        ins = {i.name: tuple(i.shape) for i in self._session.get_inputs()}
        outs = [o.name for o in self._session.get_outputs()]
        if sorted(ins) != sorted(INPUT_NAMES):
            raise CheckpointError(f"ONNX inputs {sorted(ins)} are not the CKD inputs {sorted(INPUT_NAMES)}")
        missing = [n for n in OUTPUT_NAMES if n not in outs]
        if missing:
            raise CheckpointError(f"ONNX file lacks outputs {missing}")
        self._shapes = ins
        if self.config is not None:
            want = io_shapes(self.config)
            bad = {n: s for n, s in ins.items() if s != want[n]}
            if bad:
                raise CheckpointError(f"ONNX input shapes {bad} do not match the model config")

    def infer(self, z_rgb, z_tir, x_rgb, x_tir) -> Maps:
        if self._session is None:
            raise BackendError("onnxruntime backend is closed")
        feeds = {}
        for name, arr in zip(INPUT_NAMES, (z_rgb, z_tir, x_rgb, x_tir)):
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            if arr.shape != self._shapes[name]:
                raise BackendError(f"input {name} has shape {arr.shape}, the ONNX graph expects {self._shapes[name]}")
            feeds[name] = arr
        outs = self._session.run(list(OUTPUT_NAMES), feeds)
        return dict(zip(OUTPUT_NAMES, outs))

    def describe(self) -> str:
        return f"onnxruntime ({self.providers[0]}, {self.precision}, {self.onnx_path})"

    def close(self) -> None:
        self._session = None  # onnxruntime frees its arena when the session goes
