"""open_backend(): one entry point for TensorRT, ONNX Runtime and PyTorch.

"auto" picks TensorRT when a GPU and the TensorRT bindings are present, else ONNX Runtime (else
PyTorch), and the returned backend's `.reason` says why. Model sources: a checkpoint (exported to
ONNX in the cache dir when ORT/TensorRT need it), an exported ONNX file, or an in-memory model.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Optional, Tuple

from ckd_ros.errors import CKDError
from ckd_ros.hashing import file_sha256
from ckd_ros.runtime.base import Backend
from ckd_ros.runtime.cache import ArtifactCache, as_log

KINDS = ("auto", "tensorrt", "onnxruntime", "torch")
ALIASES = {"trt": "tensorrt", "ort": "onnxruntime", "pytorch": "torch"}
PRECISIONS = ("fp32", "fp16")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def choose_auto(gpu, have_tensorrt: bool, have_onnxruntime: bool, have_weights: bool) -> Tuple[str, str]:
    """(kind, reason) for kind='auto'. have_weights: a checkpoint/model is available (torch needs one)."""
    if gpu.available and have_tensorrt:
        return "tensorrt", f"auto: GPU present ({gpu.describe()}) and TensorRT installed"
    why = f"no usable GPU: {gpu.reason}" if not gpu.available else "TensorRT Python bindings not installed"
    if have_onnxruntime:
        return "onnxruntime", f"auto: {why}; using ONNX Runtime"
    if have_weights:
        return "torch", f"auto: {why} and onnxruntime not installed; using PyTorch"
    raise CKDError(f"no backend can run an ONNX file here ({why}; onnxruntime not installed)")


def resolve_config(config=None, preset: Optional[str] = None, onnx=None, checkpoint=None):
    """CKDConfig from (in order) `config`, `preset`, the ONNX metadata, a converted checkpoint; None
    when it must be inferred from the weights."""
    from ckd_ros.model import CKDConfig

    if config is not None and preset is not None:
        raise CKDError("give either config or preset, not both")
    if config is not None:
        return config if isinstance(config, CKDConfig) else CKDConfig.from_dict(dict(config))
    if preset is not None:
        return CKDConfig.preset(preset)
    if onnx is not None:
        from ckd_ros.runtime.onnx_cache import config_from_onnx

        return config_from_onnx(onnx)
    if checkpoint is not None:
        from ckd_ros.model import load_config_for

        return load_config_for(checkpoint)
    return None


def open_backend(kind: str = "auto", *, checkpoint=None, onnx=None, preset=None, config=None,
                 precision: str = "fp32", device=None, cache_dir=None, workspace_mb: int = 2048, log=None,
                 model=None, cuda_graph: bool = False, trt_module: Optional[str] = None,
                 threads: Optional[int] = None) -> Backend:
    """Open an inference backend for the CKD student; returns a `Backend` whose `.reason` says why it was chosen.

    kind: "auto" (TensorRT when a GPU and TensorRT are present, else ONNX Runtime, else PyTorch: see
    `choose_auto`), "tensorrt", "onnxruntime" or "torch" (aliases trt, ort, pytorch).
    Model source, one of: `checkpoint` (official .pth.tar, state dict or converted .safetensors;
    exported to ONNX in the cache for ORT/TensorRT), `onnx` (a `ckd export` file) or `model` (an
    in-memory CKDStudent, e.g. random weights for benchmarks). Config: `config` (CKDConfig or dict) or
    `preset`, else the file's own metadata, else inferred from the weights (`resolve_config`).
    precision: "fp32" or "fp16" (TensorRT; ONNX Runtime only with device="tensorrt"; "auto" falls back
    to fp32 without TensorRT). device: None/"auto", "cpu", "cuda[:N]" (ORT: also "tensorrt").
    cache_dir: ONNX exports and engines (default `$CKD_CACHE_DIR` or the user cache dir; see
    runtime/cache.py). workspace_mb: TensorRT builder workspace in MiB. log: callable or logger for
    progress lines. cuda_graph: TensorRT replays each frame as a CUDA graph. trt_module: TensorRT Python
    module name (tensorrt, tensorrt_rtx). threads: CPU intra-op threads (ORT/torch).
    The backend's `infer` contract (shapes, dtypes, units) is `Backend.infer` (runtime/base.py).
    Raises CKDError subclasses: unknown kind/precision, missing files, unreadable checkpoint/ONNX
    (CheckpointError), no usable GPU/TensorRT (DependencyError/BackendError), unusable cache (CacheError).
    """
    logf = as_log(log)
    kind = ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise CKDError(f"unknown backend {kind!r}; choose one of {', '.join(KINDS)}")
    if precision not in PRECISIONS:
        raise CKDError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if checkpoint is None and onnx is None and model is None:
        raise CKDError("open_backend needs a checkpoint, an ONNX file or a model")
    for label, p in (("checkpoint", checkpoint), ("onnx", onnx)):
        if p is not None and not os.path.isfile(p):
            raise CKDError(f"{label} file not found: {p}")
    cfg = resolve_config(config, preset, onnx if model is None and checkpoint is None else None, checkpoint)
    if model is not None and cfg is None:
        cfg = model.config
    cache = ArtifactCache(cache_dir, log=log)  # a logger's .warning gets the cache fallback note
    reason = f"requested {kind}"
    if kind == "auto":
        from ckd_ros.runtime.gpu import probe_gpu

        kind, reason = choose_auto(probe_gpu(), _installed(trt_module or "tensorrt"), _installed("onnxruntime"),
                                   checkpoint is not None or model is not None)
        if precision == "fp16" and kind != "tensorrt" and device in (None, "auto", "cpu"):
            # a config written for the Jetson (fp16) must still start on a CPU machine
            precision = "fp32"
            reason += "; fp16 needs TensorRT, running fp32"
    if kind == "torch":
        backend = _open_torch(model, checkpoint, cfg, precision, device, reason)
    else:
        onnx_path = onnx
        if onnx_path is None:
            from ckd_ros.runtime.onnx_cache import ensure_onnx

            onnx_path, _ = ensure_onnx(cache, checkpoint=checkpoint, model=model, config=cfg, log=logf)
        if cfg is None:
            from ckd_ros.runtime.onnx_cache import config_from_onnx

            cfg = config_from_onnx(onnx_path)
        if kind == "onnxruntime":
            from ckd_ros.runtime.ort_backend import OnnxRuntimeBackend

            backend = OnnxRuntimeBackend(onnx_path, config=cfg, device=device, precision=precision,
                                         threads=threads, trt_cache_dir=cache.path("ort-trt"), log=logf,
                                         reason=reason)
        else:
            backend = open_tensorrt(onnx_path, cfg, cache, precision=precision, workspace_mb=workspace_mb,
                                    cuda_graph=cuda_graph, trt_module=trt_module, log=logf, reason=reason)
    logf(f"backend: {backend.describe()} ({backend.reason})")
    return backend


def _open_torch(model, checkpoint, cfg, precision, device, reason) -> Backend:
    from ckd_ros.runtime.torch_backend import TorchBackend

    if model is None:
        if checkpoint is None:
            raise CKDError("the torch backend needs a checkpoint (an ONNX file has no PyTorch model)")
        from ckd_ros.model import load_checkpoint

        model = load_checkpoint(checkpoint, cfg)
    return TorchBackend(model, device=device, precision=precision, reason=reason)


def engine_key_for(onnx_path, *, trt, gpu, precision: str, workspace_mb: int):
    from ckd_ros.runtime.engine_cache import make_engine_key

    return make_engine_key(file_sha256(onnx_path), trt_module=trt.__name__, trt_version=trt.__version__,
                           gpu=gpu, precision=precision, workspace_mb=workspace_mb)


def _builder(trt, precision: str, workspace_mb: int, log):
    from ckd_ros.runtime.trt_build import build_engine_bytes

    def build(onnx_file, timing_cache):
        return build_engine_bytes(onnx_file, precision=precision, workspace_mb=workspace_mb,
                                  timing_cache_path=timing_cache, log=log, trt=trt)

    return build


def build_engine_cached(onnx_path, cache: ArtifactCache, *, precision: str = "fp32", workspace_mb: int = 2048,
                        trt_module: Optional[str] = None, gpu=None, log=None, require_gpu: bool = True):
    """Build (or find) the engine for `onnx_path` without loading it: (path, action, key)."""
    from ckd_ros.runtime.engine_cache import ensure_engine
    from ckd_ros.runtime.gpu import probe_gpu
    from ckd_ros.runtime.trt_build import import_tensorrt

    logf = as_log(log)
    gpu = gpu if gpu is not None else probe_gpu()
    if require_gpu and not gpu.available:
        raise CKDError(f"TensorRT needs an NVIDIA GPU: {gpu.reason}")
    trt = import_tensorrt(trt_module)
    key = engine_key_for(onnx_path, trt=trt, gpu=gpu, precision=precision, workspace_mb=workspace_mb)

    path, action = ensure_engine(onnx_path, key, _builder(trt, precision, workspace_mb, logf), cache, log=logf)
    return path, action, key


def open_tensorrt(onnx_path, cfg, cache: ArtifactCache, *, precision="fp32", workspace_mb=2048,
                  cuda_graph=False, trt_module=None, log=None, reason="") -> Backend:
    from ckd_ros.runtime.engine_cache import load_engine
    from ckd_ros.runtime.gpu import probe_gpu
    from ckd_ros.runtime.trt_build import import_tensorrt, make_logger
    from ckd_ros.runtime.trt_runner import TensorRTBackend

    logf = as_log(log)
    gpu = probe_gpu()  # before anything touches TensorRT: it segfaults without a GPU
    if not gpu.available:
        raise CKDError(f"TensorRT backend needs an NVIDIA GPU: {gpu.reason}")
    trt = import_tensorrt(trt_module)
    key = engine_key_for(onnx_path, trt=trt, gpu=gpu, precision=precision, workspace_mb=workspace_mb)
    runtime = trt.Runtime(make_logger(trt, logf))

    build = _builder(trt, precision, workspace_mb, logf)
    engine, path, action = load_engine(onnx_path, key, build, runtime.deserialize_cuda_engine, cache, log=logf)
    if action != "cached":
        reason = f"{reason}; engine {action}"
    return TensorRTBackend(engine, trt=trt, runtime=runtime, config=cfg, precision=precision,
                           cuda_graph=cuda_graph, engine_path=path, log=logf, reason=reason)
