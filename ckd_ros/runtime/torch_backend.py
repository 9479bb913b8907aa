"""PyTorch backend: the reference (eager) model behind the same interface as TensorRT and ORT."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ckd_ros.errors import CKDError, ParameterError
from ckd_ros.model.io_spec import OUTPUT_NAMES
from ckd_ros.runtime.base import Backend, Maps
from ckd_ros.runtime.options import check_precision


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model, device: Optional[str] = None, precision: str = "fp32", reason: str = ""):
        super().__init__()
        import torch

        self._torch = torch
        if device in (None, "auto"):
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise CKDError("torch backend: device 'cuda' requested but torch sees no CUDA GPU")
        if check_precision(precision) == "int8":
            raise ParameterError("torch backend runs fp32/fp16; int8 needs a QDQ ONNX file (`ckd quantize`) on "
                                 "ONNX Runtime or TensorRT")
        if precision == "fp16" and self.device.type != "cuda":
            raise CKDError("torch backend: fp16 needs a CUDA device")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.precision = precision
        self.model = model.eval().to(self.device, self.dtype)
        self.config = getattr(model, "config", None)
        self.reason = reason
        self._z = None

    def _tensor(self, arr: np.ndarray, name: str):
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 4 or arr.shape[:2] != (1, 3):
            raise CKDError(f"input {name} must be shaped (1,3,H,W), got {arr.shape}")
        return self._torch.from_numpy(np.ascontiguousarray(arr)).to(self.device, self.dtype)

    def _run(self, z_rgb, z_tir, x_rgb, x_tir) -> Maps:
        with self._torch.inference_mode():
            out = self.model(z_rgb, z_tir, x_rgb, x_tir)
            # .cpu() synchronises with the GPU, so timings of infer() include the whole forward
            return {n: out[n].float().cpu().numpy() for n in OUTPUT_NAMES}

    def infer(self, z_rgb, z_tir, x_rgb, x_tir) -> Maps:
        return self._run(self._tensor(z_rgb, "z_rgb"), self._tensor(z_tir, "z_tir"),
                         self._tensor(x_rgb, "x_rgb"), self._tensor(x_tir, "x_tir"))

    def set_template(self, z_rgb, z_tir) -> None:
        super().set_template(z_rgb, z_tir)
        self._z = (self._tensor(z_rgb, "z_rgb"), self._tensor(z_tir, "z_tir"))  # kept on the device

    def infer_search(self, x_rgb, x_tir) -> Maps:
        if self._z is None:
            raise RuntimeError("set_template() must be called before infer_search()")
        return self._run(*self._z, self._tensor(x_rgb, "x_rgb"), self._tensor(x_tir, "x_tir"))

    def describe(self) -> str:
        name = getattr(self.config, "name", "?")
        return f"torch ({self._torch.__version__}, {self.device}, {self.precision}, model {name})"

    def close(self) -> None:
        self._z = None
        self.model = None
