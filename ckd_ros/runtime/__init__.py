"""Inference backends behind one interface (TensorRT, ONNX Runtime, PyTorch), engine building and caching.

Importing this package is cheap: torch, onnxruntime, tensorrt and cuda-python are imported only when
a backend that needs them is opened. Names are resolved lazily (PEP 562).
"""
from __future__ import annotations

import importlib

from ckd_ros.runtime.base import INPUT_NAMES, OUTPUT_NAMES, Backend

_LAZY = {
    "open_backend": "ckd_ros.runtime.factory",
    "choose_auto": "ckd_ros.runtime.factory",
    "probe_gpu": "ckd_ros.runtime.gpu",
    "GpuInfo": "ckd_ros.runtime.gpu",
    "TorchBackend": "ckd_ros.runtime.torch_backend",
    "OnnxRuntimeBackend": "ckd_ros.runtime.ort_backend",
    "TensorRTBackend": "ckd_ros.runtime.trt_runner",
    "TensorRTEngine": "ckd_ros.runtime.trt_engine",
    "KINDS": "ckd_ros.runtime.options",
    "PRECISIONS": "ckd_ros.runtime.options",
    "default_cache_dir": "ckd_ros.runtime.cache",
}

__all__ = ["Backend", "INPUT_NAMES", "OUTPUT_NAMES", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckd_ros.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
