"""What a `ckd export` ONNX file says about itself, readable without torch (the runtime path).

`ckd export` stores its metadata (model config, source checkpoint hash, exporter versions, I/O
shapes) in the ONNX `metadata_props` under "ckd_ros" and in a JSON sidecar `<stem>.json`;
`read_metadata` returns it so ONNX Runtime / TensorRT backends learn the model's config without
importing torch (see model/export.py for the writer).
"""
from __future__ import annotations

import json
import pathlib
from typing import Dict

from ckd_ros.errors import CheckpointError, unreadable_onnx

METADATA_KEY = "ckd_ros"
FORMAT = "ckd_ros.onnx.v1"


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
            if meta.get("format") == FORMAT:
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
