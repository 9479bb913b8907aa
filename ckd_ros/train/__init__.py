"""CKD training: four-branch model, style/content distillation, masked modelling, MCE stage, DDP.

`train(config_path_or_dict, overrides=None) -> path of the last checkpoint` is the entry point; the
`ckd train` command wraps it. Heavy imports happen on first use.
"""
from __future__ import annotations


def train(config, overrides=None):
    from ckd_ros.train.trainer import train as _train
    return _train(config, overrides)


__all__ = ["train"]
