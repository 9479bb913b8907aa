"""The network boundary shared by every backend: four normalised float32 tensors in, three maps out.

Tracking code only ever sees this interface. Inputs are numpy float32 arrays shaped
(1,3,T,T) for templates and (1,3,S,S) for search crops (ImageNet-normalised, RGB order); outputs
are numpy float32 `score_map (1,1,F,F)`, `size_map (1,2,F,F)`, `offset_map (1,2,F,F)`. Names and
shapes are defined once in ckd_ros.model.io_spec (torch-free).
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from ckd_ros.model.io_spec import INPUT_NAMES, OUTPUT_NAMES

__all__ = ["Backend", "Maps", "INPUT_NAMES", "OUTPUT_NAMES"]

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
        """One forward pass of the CKD student (ckd-spec: network; both ViT branches with candidate
        elimination, then the CENTER head).

        z_rgb, z_tir: float32 (1,3,T,T) template crops; x_rgb, x_tir: float32 (1,3,S,S) search crops,
        ImageNet-normalised RGB order (T, S from the config, e.g. 128 / 256). Returns float32 maps
        score_map (1,1,F,F) (sigmoid scores), size_map (1,2,F,F) (w, h as fractions of the search
        crop) and offset_map (1,2,F,F) (sub-cell offset in cells), F = S / 16. Raises BackendError for
        a wrong input shape or a failed inference."""
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
