"""The network's I/O contract, written once: tensor names, which inputs are per-track, and shapes.

Torch-free. Every exporter and backend (ONNX export, ONNX Runtime, TensorRT, PyTorch) uses these
names and `io_shapes`; nothing else writes the table out. Inputs are normalised float32 NCHW crops
(ImageNet mean/std, RGB order; ckd-spec "pre-processing"): templates (1,3,T,T), search crops
(1,3,S,S); outputs score_map (1,1,F,F), size_map and offset_map (1,2,F,F) with F = S / patch_size.
"""
from __future__ import annotations

from typing import Dict, Tuple

INPUT_NAMES = ("z_rgb", "z_tir", "x_rgb", "x_tir")
OUTPUT_NAMES = ("score_map", "size_map", "offset_map")
#: uploaded once per track (CKD never updates the template)
TEMPLATE_INPUTS = ("z_rgb", "z_tir")
#: uploaded every frame
SEARCH_INPUTS = ("x_rgb", "x_tir")


def io_shapes(config, batch: int = 1) -> Dict[str, Tuple[int, ...]]:
    """name -> shape tuple for the 4 inputs and 3 outputs of a network with `config` (a CKDConfig or
    anything with template_size, search_size, feat_size)."""
    t, s, f = int(config.template_size), int(config.search_size), int(config.feat_size)
    return {"z_rgb": (batch, 3, t, t), "z_tir": (batch, 3, t, t), "x_rgb": (batch, 3, s, s),
            "x_tir": (batch, 3, s, s), "score_map": (batch, 1, f, f), "size_map": (batch, 2, f, f),
            "offset_map": (batch, 2, f, f)}
