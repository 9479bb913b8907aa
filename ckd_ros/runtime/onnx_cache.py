"""Exported ONNX files in the cache dir, keyed by the weights' hash + config + opset.

ONNX Runtime and TensorRT started from a checkpoint export once, then reuse the file (a ViT-B export
takes tens of seconds on a robot's CPU).
"""
from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Optional, Tuple

from ckd_ros.fileio import atomic_write_text
from ckd_ros.hashing import file_sha256
from ckd_ros.runtime.cache import ArtifactCache, as_log, check_artifact, key_digest


def model_sha256(model) -> str:
    """Hash of an in-memory model's weights (for models that come from no file, e.g. benchmarks)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def ensure_onnx(cache: ArtifactCache, *, checkpoint=None, model=None, config=None, opset: int = 17,
                log=None) -> Tuple[pathlib.Path, str]:
    """(path, action) of the exported ONNX for a checkpoint file or an in-memory model."""
    from ckd_ros.model import export

    log = as_log(log)
    if checkpoint is not None:
        source_sha = file_sha256(checkpoint)
        stem = pathlib.Path(checkpoint).name.split(".")[0] or "model"
    else:
        source_sha = model_sha256(model)
        stem = getattr(model.config, "name", "model")
        config = config or model.config
    key = {"source_sha256": source_sha, "config": config.to_dict() if config is not None else "inferred",
           "opset": int(opset), "format": export.FORMAT}
    path = cache.path("onnx", f"{stem}-{source_sha[:12]}-{key_digest(key)[:8]}-op{opset}.onnx")
    produced = {}
    if model is None and not check_artifact(path, key)[0]:
        from ckd_ros.model import load_checkpoint

        model = load_checkpoint(checkpoint, config)  # a bad checkpoint fails before "building ..." is logged

    def produce(tmp: pathlib.Path) -> None:
        m = model
        if m is None:  # another process removed the cached export meanwhile
            from ckd_ros.model import load_checkpoint

            m = load_checkpoint(checkpoint, config)
        produced["meta"] = export.export_onnx(m, tmp, opset=opset, checkpoint=checkpoint,
                                              checkpoint_sha256=source_sha if checkpoint else None,
                                              write_sidecar=False)  # the cache logs the final path

    path, action = cache.ensure(path, key, produce, what="ONNX export", log=log)
    if "meta" in produced:  # the export's own sidecar, so readers need not parse the big protobuf
        atomic_write_text(export.sidecar_path(path), json.dumps(produced["meta"], indent=1, sort_keys=True))
    return path, action


def config_from_onnx(onnx_path) -> Optional[object]:
    from ckd_ros.model import CKDConfig
    from ckd_ros.model.onnx_meta import read_metadata

    return CKDConfig.from_dict(read_metadata(onnx_path)["config"])
