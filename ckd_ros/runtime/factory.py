"""open_backend(): one entry point for TensorRT, ONNX Runtime and PyTorch. It only chooses.

"auto" picks TensorRT only when every runtime requirement of the TensorRT backend is met (a GPU the
driver sees, TensorRT bindings matching the driver, cuda-python matching the driver), else ONNX
Runtime (else PyTorch); the returned backend's `.reason` says in one line what was missing and what
was picked instead (issue 17.3). Model sources: a checkpoint (exported to ONNX in the cache dir
when ORT/TensorRT need it), an exported ONNX file, or an in-memory model. The model configuration
comes from ckd_ros.model.config_source.resolve_config (the one rule). TensorRT specifics live in
ckd_ros.runtime.trt_engine.TensorRTEngine. Torch is imported only for the torch backend and for
exporting a checkpoint.
"""
from __future__ import annotations

import importlib.util
import os
from typing import List, Optional, Tuple

from ckd_ros.errors import BackendError, CheckpointError, DependencyError, ParameterError
from ckd_ros.runtime.base import Backend
from ckd_ros.runtime.cache import ArtifactCache, as_log
from ckd_ros.runtime.options import ALIASES, KINDS, PRECISIONS, check_precision, normalise_kind

__all__ = ["open_backend", "choose_auto", "KINDS", "ALIASES", "PRECISIONS"]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def choose_auto(gpu, trt_problems: List[str], have_onnxruntime: bool, have_weights: bool) -> Tuple[str, str]:
    """(kind, reason) for kind='auto'.

    trt_problems: gpu.tensorrt_problems() (empty = TensorRT usable); have_weights: a checkpoint or
    in-memory model exists (the torch backend needs one). DependencyError when nothing can run."""
    if not trt_problems:
        return "tensorrt", f"auto: TensorRT usable ({gpu.describe()})"
    why = "; ".join(trt_problems)
    if have_onnxruntime:
        return "onnxruntime", f"auto: TensorRT not usable ({why}); picked ONNX Runtime"
    if have_weights:
        return "torch", f"auto: TensorRT not usable ({why}) and onnxruntime not installed; picked PyTorch"
    raise DependencyError(f"no backend can run an ONNX file here (TensorRT: {why}; onnxruntime not installed: "
                          "pip install onnxruntime)")


def open_backend(kind: str = "auto", *, checkpoint=None, onnx=None, preset=None, config=None,
                 precision: str = "fp32", device=None, cache_dir=None, workspace_mb: int = 2048, log=None,
                 model=None, cuda_graph: bool = False, trt_module: Optional[str] = None,
                 threads: Optional[int] = None) -> Backend:
    """Open an inference backend computing the CKD network (ckd-spec: network I/O).

    kind: auto / tensorrt / onnxruntime / torch (options.KINDS; aliases trt, ort, pytorch).
    Model source (one needed): checkpoint (file path), onnx (a `ckd export` file) or model (an
    in-memory CKDStudent, e.g. random weights for benchmarks). preset / config: the model config
    when the file does not carry one (resolve_config decides). precision: fp32 (true FP32 on every
    backend), fp16 (TensorRT, torch on CUDA, ORT's TensorRT provider) or int8 (a QDQ ONNX file:
    ONNX Runtime or TensorRT); with auto, fp16/int8 requests that only TensorRT can serve fall
    back to fp32 with a note. device: ONNX Runtime/torch device (auto, cpu, cuda[:N], tensorrt).
    cache_dir: ONNX/engine cache. workspace_mb: TensorRT builder workspace. log: callable or logger.
    cuda_graph: TensorRT replays each frame as a CUDA graph. trt_module: TensorRT Python module
    (tensorrt, tensorrt_rtx). threads: ONNX Runtime intra-op threads.

    The backend's infer(z_rgb, z_tir, x_rgb, x_tir) takes float32 (1,3,T,T)/(1,3,S,S) crops and
    returns float32 score_map (1,1,F,F), size_map and offset_map (1,2,F,F) (ckd_ros.model.io_spec).
    Raises ParameterError (bad kind/precision/arguments), CheckpointError (missing or unusable model
    file), DependencyError (a requested backend that cannot run here, with the install line),
    BackendError (build/load failures)."""
    logf = as_log(log)
    kind = normalise_kind(kind)
    check_precision(precision)
    if checkpoint is None and onnx is None and model is None:
        raise ParameterError("open_backend needs a checkpoint, an ONNX file or a model")
    for label, p in (("checkpoint", checkpoint), ("onnx", onnx)):
        if p is not None and not os.path.isfile(p):
            raise CheckpointError(f"{label} file not found: {p}")
    from ckd_ros.model.config_source import resolve_config

    if model is not None:
        cfg = resolve_config(config=config, preset=preset) or model.config
    elif checkpoint is not None:
        cfg = resolve_config(config=config, preset=preset, checkpoint=checkpoint, log=logf)
    else:
        cfg = resolve_config(config=config, preset=preset, onnx=onnx, log=logf)
    cache = ArtifactCache(cache_dir, log=log)  # a logger's .warning gets the cache fallback note
    reason = f"requested {kind}"
    gpu = None
    if kind == "auto":
        from ckd_ros.runtime.gpu import probe_gpu, tensorrt_problems

        gpu = probe_gpu()
        kind, reason = choose_auto(gpu, tensorrt_problems(gpu, trt_module or "tensorrt"),
                                   _installed("onnxruntime"), checkpoint is not None or model is not None)
        if precision == "fp16" and kind != "tensorrt" and device in (None, "auto", "cpu"):
            # a config written for the Jetson (fp16) must still start on a CPU machine
            precision = "fp32"
            reason += "; fp16 needs TensorRT, running fp32"
    if kind == "torch":
        backend = _open_torch(model, checkpoint, cfg, precision, device, reason)
    elif kind == "tensorrt":
        from ckd_ros.runtime.trt_engine import TensorRTEngine, require_tensorrt

        gpu = require_tensorrt(gpu, trt_module)
        onnx_path = onnx if onnx is not None or model is None else _export_model(cache, model, cfg, logf, gpu,
                                                                                 trt_module)
        engine = TensorRTEngine(onnx_path, cache, checkpoint=checkpoint if onnx is None else None, config=cfg,
                                precision=precision, workspace_mb=workspace_mb, trt_module=trt_module, gpu=gpu,
                                log=logf)
        backend = engine.open_backend(cuda_graph=cuda_graph, reason=reason)
    else:
        onnx_path = onnx
        if onnx_path is None:
            from ckd_ros.runtime.onnx_cache import ensure_onnx

            onnx_path, _ = ensure_onnx(cache, checkpoint=checkpoint, model=model, config=cfg, log=logf)
        if cfg is None:
            cfg = resolve_config(onnx=onnx_path)
        from ckd_ros.runtime.ort_backend import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(onnx_path, config=cfg, device=device, precision=precision,
                                     threads=threads, trt_cache_dir=cache.path("ort-trt"), log=logf,
                                     reason=reason)
    logf(f"backend: {backend.describe()} ({backend.reason})")
    return backend


def _export_model(cache, model, cfg, log, gpu, trt_module):
    """An in-memory model exported (in the mode this TensorRT's parser needs) into the cache."""
    from ckd_ros.model.onnx_meta import export_mode_for_trt
    from ckd_ros.runtime.onnx_cache import ensure_onnx
    from ckd_ros.runtime.trt_common import import_tensorrt

    mode = export_mode_for_trt(import_tensorrt(trt_module).__version__).name
    return ensure_onnx(cache, model=model, config=cfg, mode=mode, log=log)[0]


def _open_torch(model, checkpoint, cfg, precision, device, reason) -> Backend:
    from ckd_ros.runtime.torch_backend import TorchBackend

    if model is None:
        if checkpoint is None:
            raise BackendError("the torch backend needs a checkpoint (an ONNX file has no PyTorch model)")
        from ckd_ros.model import load_checkpoint

        model = load_checkpoint(checkpoint, cfg)
    return TorchBackend(model, device=device, precision=precision, reason=reason)
