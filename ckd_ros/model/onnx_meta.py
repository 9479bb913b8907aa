"""What a `ckd export` ONNX file says about itself, and the export modes per TensorRT generation.

Torch-free (the ONNX Runtime / TensorRT paths read it on robots without torch).

Export modes (issue 17.1): TensorRT 8.5's ONNX parser (JetPack 5.1) cannot import
`LayerNormalization` (operator table: "N"; 8.6: "Y"), which the opset-17 exporter emits fused.
- `standard`: opset 17, LayerNormalization fused (TensorRT >= 8.6, ONNX Runtime).
- `trt85`: opset 16, LayerNorm decomposed (ReduceMean/Sub/Pow/Sqrt/Div) so TensorRT 8.5 parses it;
  FP16 builds keep the decomposed normalisation layers in FP32 (layer precision + obey-precision
  constraints), as the fused layer does internally.
The engine builder picks the mode from the TensorRT version (`export_mode_for_trt`).
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Dict, Optional, Tuple

from ckd_ros.errors import CheckpointError, ParameterError, unreadable_onnx

METADATA_KEY = "ckd_ros"
FORMAT = "ckd_ros.onnx.v1"


@dataclasses.dataclass(frozen=True)
class ExportMode:
    name: str
    opset: int
    #: TensorRT versions (major, minor) this mode is for: [min_trt, max_trt)
    min_trt: Tuple[int, int]
    max_trt: Optional[Tuple[int, int]]
    #: FP16 builds pin normalisation layers to FP32 (decomposed LayerNorm overflows in FP16)
    fp32_norm_layers: bool
    help: str


EXPORT_MODES: Dict[str, ExportMode] = {
    "standard": ExportMode("standard", 17, (8, 6), None, False,
                           "opset 17, fused LayerNormalization: TensorRT >= 8.6 (JetPack 6, desktop), ONNX Runtime"),
    "trt85": ExportMode("trt85", 16, (8, 0), (8, 6), True,
                        "opset 16, LayerNorm decomposed: TensorRT 8.5 (JetPack 5.1); FP16 keeps norms in FP32"),
}
DEFAULT_MODE = "standard"


def trt_version_tuple(version: str) -> Tuple[int, int]:
    """'8.5.2.2' -> (8, 5)."""
    parts = (str(version).split(".") + ["0"])[:2]
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except ValueError:
        raise ParameterError(f"cannot read TensorRT version {version!r}") from None


def export_mode_for_trt(version: str) -> ExportMode:
    """The export mode a TensorRT version's parser needs (trt85 below 8.6, else standard)."""
    v = trt_version_tuple(version)
    for mode in EXPORT_MODES.values():
        if v >= mode.min_trt and (mode.max_trt is None or v < mode.max_trt):
            return mode
    return EXPORT_MODES[DEFAULT_MODE]


def export_mode(name: Optional[str]) -> ExportMode:
    """ExportMode by name (None: the default); ParameterError for an unknown name."""
    name = name or DEFAULT_MODE
    if name not in EXPORT_MODES:
        raise ParameterError(f"unknown export mode {name!r}; choose one of {', '.join(EXPORT_MODES)}")
    return EXPORT_MODES[name]


def sidecar_path(onnx_path) -> pathlib.Path:
    """`model.onnx` -> `model.json` (the export's metadata sidecar)."""
    return pathlib.Path(onnx_path).with_suffix(".json")


def read_metadata(onnx_path) -> Dict:
    """Metadata of a `ckd export` file: the JSON sidecar if present, else the embedded copy.

    Raises CheckpointError when the file is truncated / not ONNX, or carries no ckd_ros metadata.
    """
    onnx_path = pathlib.Path(onnx_path)
    side = sidecar_path(onnx_path)
    if side.is_file():
        try:
            meta = json.loads(side.read_text())
            if isinstance(meta, dict) and meta.get("format") == FORMAT:
                return meta
        except ValueError:
            pass
    import onnx

    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # google.protobuf DecodeError, onnx errors
        raise unreadable_onnx(onnx_path, type(exc).__name__) from exc
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise CheckpointError(f"{onnx_path} carries no ckd_ros metadata (not made by `ckd export`); "
                          "pass a config/preset")


def mode_of(meta: Dict) -> ExportMode:
    """The export mode recorded in a file's metadata (files from before modes existed: by opset)."""
    name = meta.get("export_mode")
    if name in EXPORT_MODES:
        return EXPORT_MODES[name]
    return EXPORT_MODES["trt85"] if int(meta.get("opset", 17)) < 17 else EXPORT_MODES["standard"]
