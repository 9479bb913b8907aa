"""The CKD student network in PyTorch, checkpoint loading and conversion.

Names are resolved lazily (PEP 562): `ckd_ros.model.config`, `ckd_ros.model.io_spec` and
`ckd_ros.model.config_source` are torch-free, so the ONNX Runtime / TensorRT paths can read a model's
configuration without importing torch; `CKDStudent`, `load_checkpoint`, ... import torch on first use.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "CKDConfig": "ckd_ros.model.config",
    "PRESETS": "ckd_ros.model.config",
    "CKDStudent": "ckd_ros.model.student",
    "load_checkpoint": "ckd_ros.model.checkpoint",
    "load_config_for": "ckd_ros.model.checkpoint",
    "convert": "ckd_ros.model.checkpoint",
    "save_converted": "ckd_ros.model.checkpoint",
    "file_sha256": "ckd_ros.hashing",
    "resolve_config": "ckd_ros.model.config_source",
}

__all__ = list(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckd_ros.model' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
