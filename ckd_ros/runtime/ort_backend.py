"""ONNX Runtime backend: CPU, CUDA or TensorRT execution providers, whichever are installed.

device: None/"auto" (CUDA when the provider and a GPU are present, else CPU), "cpu", "cuda[:N]",
or "tensorrt" (ORT's TensorRT provider; its engines go to the ckd_ros cache dir, not the cwd).
"""
from __future__ import annotations

import os
import pathlib
from typing import List, Optional, Tuple

import numpy as np

from ckd_ros.errors import BackendError, CheckpointError, CKDError, unreadable_onnx
from ckd_ros.runtime.base import INPUT_NAMES, OUTPUT_NAMES, Backend, Maps
from ckd_ros.runtime.cache import as_log


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise CKDError(f"onnxruntime is not installed ({exc}): pip install onnxruntime") from exc
    return onnxruntime


def choose_providers(available: List[str], device: Optional[str], precision: str, gpu_ok: bool,
                     trt_cache_dir: Optional[str] = None) -> Tuple[list, str]:
    """(providers for InferenceSession, why). Pure function of what is installed, for testing."""
    device = (device or "auto").lower()
    dev_id = 0
    if device.startswith("cuda:"):
        device, dev_id = "cuda", int(device.split(":", 1)[1])
    cpu = "CPUExecutionProvider"
    cuda = ("CUDAExecutionProvider", {"device_id": dev_id})
    if device == "cpu":
        return [cpu], "device=cpu"
    if device == "auto":
        if "CUDAExecutionProvider" in available and gpu_ok:
            return [cuda, cpu], "CUDA provider and a GPU present"
        why = "no GPU" if not gpu_ok else "CUDA provider not installed"
        return [cpu], f"CPU ({why})"
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise CKDError("onnxruntime has no CUDAExecutionProvider here: pip install onnxruntime-gpu")
        return [cuda, cpu], "device=cuda"
    if device == "tensorrt":
        if "TensorrtExecutionProvider" not in available:
            raise CKDError("onnxruntime has no TensorrtExecutionProvider here (needs onnxruntime-gpu + TensorRT)")
        opts = {"device_id": dev_id, "trt_fp16_enable": precision == "fp16"}
        if trt_cache_dir:
            opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=trt_cache_dir,
                        trt_timing_cache_enable=True, trt_timing_cache_path=trt_cache_dir)
        return [("TensorrtExecutionProvider", opts), cuda, cpu], "device=tensorrt"
    raise CKDError(f"unknown onnxruntime device {device!r} (auto, cpu, cuda[:N], tensorrt)")


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
        first = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if precision == "fp16" and first != "TensorrtExecutionProvider":
            raise CKDError("onnxruntime runs the fp32 graph; fp16 needs device='tensorrt' or the TensorRT backend")
        if first == "TensorrtExecutionProvider" and trt_cache_dir:
            os.makedirs(trt_cache_dir, exist_ok=True)
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
        self.providers = self._session.get_providers()
        self.config, self.precision = config, precision
        self.reason = reason or why
        self._check_io()

    def _check_io(self) -> None:
        ins = {i.name: tuple(i.shape) for i in self._session.get_inputs()}
        outs = [o.name for o in self._session.get_outputs()]
        if sorted(ins) != sorted(INPUT_NAMES):
            raise CKDError(f"ONNX inputs {sorted(ins)} are not the CKD inputs {sorted(INPUT_NAMES)}")
        missing = [n for n in OUTPUT_NAMES if n not in outs]
        if missing:
            raise CKDError(f"ONNX file lacks outputs {missing}")
        self._shapes = ins
        if self.config is not None:
            from ckd_ros.runtime.trt_runner import expected_shapes

            want = expected_shapes(self.config)
            bad = {n: s for n, s in ins.items() if s != want[n]}
            if bad:
                raise CKDError(f"ONNX input shapes {bad} do not match the model config")

    def infer(self, z_rgb, z_tir, x_rgb, x_tir) -> Maps:
        if self._session is None:
            raise CKDError("onnxruntime backend is closed")
        feeds = {}
        for name, arr in zip(INPUT_NAMES, (z_rgb, z_tir, x_rgb, x_tir)):
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            if arr.shape != self._shapes[name]:
                raise CKDError(f"input {name} has shape {arr.shape}, the ONNX graph expects {self._shapes[name]}")
            feeds[name] = arr
        outs = self._session.run(list(OUTPUT_NAMES), feeds)
        return dict(zip(OUTPUT_NAMES, outs))

    def describe(self) -> str:
        return f"onnxruntime ({self.providers[0]}, {self.precision}, {self.onnx_path})"

    def close(self) -> None:
        self._session = None  # onnxruntime frees its arena when the session goes
