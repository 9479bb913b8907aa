"""The network boundary shared by every backend: four normalised float32 tensors in, three maps out.

Tracking code only ever sees this interface. Inputs are numpy float32 arrays shaped
(1,3,T,T) for templates and (1,3,S,S) for search crops (ImageNet-normalised, RGB order); outputs
are numpy float32 `score_map (1,1,F,F)`, `size_map (1,2,F,F)`, `offset_map (1,2,F,F)`.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

OUTPUT_NAMES = ("score_map", "size_map", "offset_map")
INPUT_NAMES = ("z_rgb", "z_tir", "x_rgb", "x_tir")

Maps = Dict[str, np.ndarray]


class Backend:
    """Base class of all inference backends.

    Subclasses implement `infer`. The template pair is fixed for a whole track (CKD never updates
    it), so trackers call `set_template` once per initialisation and `infer_search` every frame;
    backends that keep device-side template buffers (TensorRT) override those two.
    """

    name = "base"
    #: CKDConfig of the network (template/search sizes, feature size)
    config = None
    #: why this backend was chosen (open_backend fills it in; "auto" explains its pick)
    reason = ""

    def __init__(self) -> None:
        self._z_rgb = None
        self._z_tir = None

    def infer(self, z_rgb: np.ndarray, z_tir: np.ndarray, x_rgb: np.ndarray, x_tir: np.ndarray) -> Maps:
        """Run the network once on one template pair and one search pair.

        Inputs (numpy, C-contiguous float32 or convertible): `z_rgb`, `z_tir` (1, 3, T, T) templates and
        `x_rgb`, `x_tir` (1, 3, S, S) search crops, T = config.template_size (128), S =
        config.search_size (256) pixels; RGB channel order, values ImageNet-normalised
        ((x/255 - mean) / std, ckd-spec §2.4); the thermal crops are the 8-bit thermal image replicated
        to three channels and normalised the same way.
        Returns {"score_map": (1, 1, F, F), "size_map": (1, 2, F, F), "offset_map": (1, 2, F, F)} numpy
        float32, F = S / patch_size (16): centre score (sigmoid, clamped to [1e-4, 1-1e-4]), box
        width/height (sigmoid) as a fraction of the search crop, sub-cell offset in cells (CENTER head,
        ckd-spec §1.5; decoding and the Hann window live in tracking/). Maps may hold NaN/Inf (e.g. an
        FP16 overflow): callers check.
        Raises CKDError (BackendError) for a closed backend, wrong input shapes or a failed inference.
        """
        raise NotImplementedError

    def set_template(self, z_rgb: np.ndarray, z_tir: np.ndarray) -> None:
        self._z_rgb = np.ascontiguousarray(z_rgb, dtype=np.float32)
        self._z_tir = np.ascontiguousarray(z_tir, dtype=np.float32)

    def infer_search(self, x_rgb: np.ndarray, x_tir: np.ndarray) -> Maps:
        if self._z_rgb is None:
            raise RuntimeError("set_template() must be called before infer_search()")
        return self.infer(self._z_rgb, self._z_tir, x_rgb, x_tir)

    def describe(self) -> str:
        """One line for logs/diagnostics: backend, device, precision, model file."""
        return self.name

    def close(self) -> None:
        """Release device memory. Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
