"""The runtime's option values, defined once: backend kinds, their aliases, precisions (and the
model presets, re-exported from ckd_ros.model.config where they are defined).

Every command line, node parameter and factory check imports these tuples (torch-free).
"""
from __future__ import annotations

from ckd_ros.errors import ParameterError
from ckd_ros.model.config import PRESETS

__all__ = ["KINDS", "ALIASES", "PRECISIONS", "PRESETS", "normalise_kind", "check_precision"]

#: backend kinds accepted by open_backend (and the node's `backend` parameter)
KINDS = ("auto", "tensorrt", "onnxruntime", "torch")
ALIASES = {"trt": "tensorrt", "ort": "onnxruntime", "pytorch": "torch"}
#: network precisions: fp32 everywhere (true FP32: no TF32), fp16 (TensorRT, torch on CUDA),
#: int8 (an explicit-quantization QDQ ONNX file from `ckd quantize`: ONNX Runtime, TensorRT)
PRECISIONS = ("fp32", "fp16", "int8")


def normalise_kind(kind: str) -> str:
    """'trt' -> 'tensorrt' etc.; ParameterError for an unknown kind."""
    kind = ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ParameterError(f"unknown backend {kind!r}; choose one of {', '.join(KINDS)}")
    return kind


def check_precision(precision: str) -> str:
    """`precision` itself; ParameterError unless it is one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise ParameterError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision
