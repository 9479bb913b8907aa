"""The CKD student network in PyTorch, checkpoint loading and conversion.

Names are resolved lazily (PEP 562): importing `ckd_ros.model.config` (CKDConfig, torch-free) or the
`ckd` command's model subcommands does not import torch until a model is actually built or loaded.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "CKDConfig": "ckd_ros.model.config",
    "CKDStudent": "ckd_ros.model.student",
    "load_checkpoint": "ckd_ros.model.checkpoint",
    "load_config_for": "ckd_ros.model.checkpoint",
    "convert": "ckd_ros.model.checkpoint",
    "save_converted": "ckd_ros.model.checkpoint",
    "file_sha256": "ckd_ros.hashing",
}

__all__ = ["CKDConfig", "CKDStudent", "load_checkpoint", "load_config_for", "convert", "save_converted",
           "file_sha256"]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckd_ros.model' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
