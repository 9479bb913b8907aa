"""Export a CKDStudent to one static-shape ONNX file that TensorRT and ONNX Runtime accept.

The graph: batch 1, template/search sizes from the config, inputs z_rgb, z_tir, x_rgb, x_tir
(normalised float32), outputs score_map, size_map, offset_map. Candidate elimination stays inside
the graph with constant keep counts (TopK with constant K + Gather + Scatter); nothing has a
data-dependent shape. The legacy TorchScript exporter (dynamo=False) is used: it honours the
requested opset exactly (dynamo was seen to emit 18 for 17) and gives a deterministic graph.

Metadata (config, source checkpoint hash, exporter versions, I/O shapes) goes both into the ONNX
metadata_props under "ckd_ros" (travels with the file) and into a JSON sidecar `<stem>.json`.
`debug_outputs=True` adds `kept_idx_<j>` outputs (kept raster indices per CE block) to test that the
exported graph selects the same tokens as PyTorch; deployed files never carry them.
"""
from __future__ import annotations

import contextlib
import json
import pathlib
import time
import warnings
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ckd_ros.errors import CKDError
from ckd_ros.fileio import atomic_path, atomic_write_text
from ckd_ros.model.onnx_meta import FORMAT, METADATA_KEY, read_metadata, sidecar_path  # noqa: F401

INPUT_NAMES = ("z_rgb", "z_tir", "x_rgb", "x_tir")  # = ckd_ros.runtime.base.INPUT_NAMES
OUTPUT_NAMES = ("score_map", "size_map", "offset_map")  # = ckd_ros.runtime.base.OUTPUT_NAMES
DEFAULT_OPSET = 17
# ops whose output shape depends on data (TensorRT needs static shapes; NonZero is rejected outright)
DATA_DEPENDENT_OPS = ("NonZero", "Compress", "Unique", "Loop", "If", "Scan")


class _ExportWrapper(nn.Module):
    """Tuple outputs in a fixed order (the exporter names them positionally)."""

    def __init__(self, model: nn.Module, debug_outputs: bool):
        super().__init__()
        self.model = model
        self.debug_outputs = debug_outputs

    def forward(self, z_rgb, z_tir, x_rgb, x_tir):
        out = self.model(z_rgb, z_tir, x_rgb, x_tir, return_extras=self.debug_outputs)
        maps = tuple(out[n] for n in OUTPUT_NAMES)
        if not self.debug_outputs:
            return maps
        extra = tuple(out["kept_idx"])
        if not self.model.config.mce:
            extra += tuple(out["kept_idx_tir"])
        return maps + extra


def debug_output_names(config) -> List[str]:
    names = [f"kept_idx_{j}" for j in range(len(config.ce_loc))]
    if not config.mce:
        names += [f"kept_idx_tir_{j}" for j in range(len(config.ce_loc))]
    return names


def io_shapes(config, batch: int = 1) -> Dict[str, List[int]]:
    t, s, f = config.template_size, config.search_size, config.feat_size
    return {"z_rgb": [batch, 3, t, t], "z_tir": [batch, 3, t, t], "x_rgb": [batch, 3, s, s],
            "x_tir": [batch, 3, s, s], "score_map": [batch, 1, f, f], "size_map": [batch, 2, f, f],
            "offset_map": [batch, 2, f, f]}


def example_inputs(config, seed: int = 0, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    shapes = io_shapes(config, batch)
    return tuple(torch.randn(*shapes[n], generator=g) for n in INPUT_NAMES)


def export_onnx(model: nn.Module, path, *, opset: int = DEFAULT_OPSET, debug_outputs: bool = False,
                checkpoint=None, checkpoint_sha256: Optional[str] = None, write_sidecar: bool = True,
                log=None) -> Dict:
    """Export `model` (a CKDStudent) to `path`; return the metadata dict. Raises CKDError if the
    resulting graph breaks a deployment rule (see check_graph)."""
    import onnx

    log = log or (lambda msg: None)
    config = model.config
    final = pathlib.Path(path)
    with atomic_path(final) as path:  # an interrupted export never leaves a truncated .onnx behind
        names_out = list(OUTPUT_NAMES) + (debug_output_names(config) if debug_outputs else [])
        was_training = model.training
        model.eval()
        t0 = time.monotonic()
        try:
            with torch.no_grad(), _quiet_exporter():
                torch.onnx.export(_ExportWrapper(model, debug_outputs), example_inputs(config), str(path),
                                  dynamo=False, opset_version=int(opset), do_constant_folding=True,
                                  input_names=list(INPUT_NAMES), output_names=names_out)
        finally:
            model.train(was_training)
        proto = onnx.load(str(path))
        problems = check_graph(proto, opset)
        if problems:
            raise CKDError(f"exported graph breaks deployment rules: {'; '.join(problems)}")
        if checkpoint is not None and checkpoint_sha256 is None:
            from ckd_ros.hashing import file_sha256

            checkpoint_sha256 = file_sha256(checkpoint)
        meta = {
            "format": FORMAT,
            "config": config.to_dict(),
            "checkpoint": {"path": str(checkpoint) if checkpoint else None, "sha256": checkpoint_sha256},
            "opset": int(opset),
            "inputs": {n: io_shapes(config)[n] for n in INPUT_NAMES},
            "outputs": {n: io_shapes(config)[n] for n in OUTPUT_NAMES},
            "debug_outputs": debug_output_names(config) if debug_outputs else [],
            "keep_counts": list(config.keep_counts),
            "exporter": {"torch": torch.__version__, "onnx": onnx.__version__, "mode": "torchscript (dynamo=False)",
                         "ckd_ros": _ckd_version()},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)
        proto.producer_name = "ckd_ros"
        onnx.save(proto, str(path))
    path = final
    if write_sidecar:
        atomic_write_text(sidecar_path(path), json.dumps(meta, indent=1, sort_keys=True))
    log(f"exported {path} (opset {opset}, {path.stat().st_size / 2**20:.1f} MiB) in {time.monotonic() - t0:.1f} s")
    return meta


def check_graph(proto, opset: Optional[int] = None) -> List[str]:
    """Deployment rules: requested opset, no data-dependent ops, TopK with a constant K < 3840,
    static input/output shapes. Returns the list of violations (empty = fine)."""
    problems = []
    version = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and version != opset:
        problems.append(f"opset is {version}, expected {opset}")
    graph = proto.graph
    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = attr.t
    for node in graph.node:
        if node.op_type in DATA_DEPENDENT_OPS:
            problems.append(f"{node.op_type} node {node.name} (data-dependent shape)")
        if node.op_type == "TopK":
            k = constants.get(node.input[1]) if len(node.input) > 1 else None
            if k is None:
                problems.append(f"TopK {node.name} has a computed K (TensorRT needs a constant)")
            else:
                from onnx import numpy_helper

                kval = int(np.asarray(numpy_helper.to_array(k)).reshape(-1)[0])
                if kval >= 3840:
                    problems.append(f"TopK {node.name} K={kval} >= 3840 (TensorRT limit)")
    for value in list(graph.input) + list(graph.output):
        if value.name in constants:
            continue
        dims = value.type.tensor_type.shape.dim
        if not dims or any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims):
            problems.append(f"{value.name} has a non-static shape")
    return problems


def verify_onnx(model: nn.Module, onnx_path, *, seed: int = 1, log=None) -> Dict[str, float]:
    """Max |ONNX Runtime - PyTorch| per output on random inputs (a quick post-export check)."""
    import onnxruntime as ort

    inputs = example_inputs(model.config, seed)
    with torch.no_grad():
        ref = model.eval()(*inputs)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outs = sess.run(list(OUTPUT_NAMES), {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
    errs = {n: float(np.abs(o - ref[n].numpy()).max()) for n, o in zip(OUTPUT_NAMES, outs)}
    if log:
        log("ONNX Runtime vs PyTorch max abs error: " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
    return errs


@contextlib.contextmanager
def _quiet_exporter():
    """The legacy exporter warns about its own deprecation and about shape-derived ints (our shapes
    are static, so those traces are exact)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _ckd_version() -> str:
    try:
        from ckd_ros import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"
