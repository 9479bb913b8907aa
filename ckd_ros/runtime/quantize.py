"""`ckd quantize`: a `ckd export` ONNX file -> an INT8 ONNX file (QDQ form) plus its sidecar.

Static mode (default): ONNX Runtime's `quantize_static` in the QDQ format, per-channel symmetric
INT8 weights, symmetric INT8 activations (zero point 0: the form TensorRT's explicit quantization
accepts), activation ranges calibrated (MinMax) on real network inputs, i.e. the template and search
crops the tracker itself takes with the FP32 model from a calibration source: the synthetic scenes
(default), a dataset sequence folder, or an RGB + thermal image folder / video pair. Dynamic mode:
`quantize_dynamic` of MatMul/Gemm (weights INT8, activations quantised at run time; no calibration,
ONNX Runtime only).

What stays FP32 (measured, docs/deployment.md "INT8"): INT8 are the patch-embedding Convs and the
MatMuls with a constant weight (qkv, projection, MLP), i.e. nearly all of the backbone's FLOPs. The
activation x activation MatMuls (q.k^T and attention x v) stay FP32: the candidate-elimination TopK
ranks tokens by those attention scores, and quantising them changed the kept sets and the argmax
cell. The box head stays FP32 (it halved the map errors at a few % of the FLOPs; `int8_head=True`
quantises it too). Softmax, LayerNorm, GELU, the TopK/Gather/Scatter token bookkeeping and the
sigmoids are never quantised.

The output keeps `ckd export`'s graph rules (static shapes, constant TopK K; checked with
`ckd_ros.model.export.check_graph`) and its metadata, plus a "quantization" block (method, calibration
data, excluded nodes, error against FP32 on held-out calibration inputs) in the embedded metadata and
in the JSON sidecar `<stem>.json`.
"""
from __future__ import annotations

import json
import pathlib
import tempfile
import time
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from ckd_ros.errors import CKDError, DependencyError, InputError
from ckd_ros.runtime.base import INPUT_NAMES, OUTPUT_NAMES, Backend

METHODS = ("static", "dynamic")
#: op types quantised in static mode (the rest of the graph stays FP32; see the module docstring)
STATIC_OP_TYPES = ("Conv", "MatMul", "Gemm")
DYNAMIC_OP_TYPES = ("MatMul", "Gemm")
SYNTHETIC_SCENARIOS = ("clean", "night", "crossover", "occlusion", "distractors", "scale", "camera_motion",
                       "mixed")
HEAD_SCOPE = "/box_head/"  # node-name scope of the CENTER head in `ckd export` graphs
CALIB_SEED_BASE = 500000  # synthetic calibration scenes: seeds distinct from training (1000+) and held-out (900000+)


# ---- recording the tracker's network inputs --------------------------------------------------------
class InputRecorder(Backend):
    """A backend that forwards to `inner` and keeps every network input it sees.

    `samples` is a list of dicts {z_rgb, z_tir: (1,3,T,T), x_rgb, x_tir: (1,3,S,S)} float32,
    normalised exactly as the tracker feeds the network (one per `infer_search`).
    """

    name = "recorder"

    def __init__(self, inner: Backend, limit: Optional[int] = None) -> None:
        super().__init__()
        self.inner, self.limit = inner, limit
        self.config = inner.config
        self.samples: List[Dict[str, np.ndarray]] = []

    def set_template(self, z_rgb, z_tir) -> None:
        super().set_template(z_rgb, z_tir)
        self.inner.set_template(z_rgb, z_tir)

    def infer_search(self, x_rgb, x_tir):
        if self.limit is None or len(self.samples) < self.limit:
            self.samples.append({"z_rgb": self._z_rgb, "z_tir": self._z_tir,
                                 "x_rgb": np.array(x_rgb, np.float32), "x_tir": np.array(x_tir, np.float32)})
        return self.inner.infer_search(x_rgb, x_tir)

    def infer(self, z_rgb, z_tir, x_rgb, x_tir):
        return self.inner.infer(z_rgb, z_tir, x_rgb, x_tir)


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over recorded input dicts."""

    def __init__(self, samples: Sequence[Dict[str, np.ndarray]]):
        self._it = iter(samples)

    def get_next(self):
        return next(self._it, None)


# ---- graph helpers -------------------------------------------------------------------------------
def head_nodes(proto) -> List[str]:
    """Names of the box head's Conv nodes (kept FP32 by default)."""
    return [n.name for n in proto.graph.node if n.op_type in STATIC_OP_TYPES and HEAD_SCOPE in n.name]


def activation_matmuls(proto) -> List[str]:
    """Names of MatMul nodes whose both inputs are computed (attention q.k^T and attn.v)."""
    consts = {i.name for i in proto.graph.initializer}
    consts |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in proto.graph.node if n.op_type == "MatMul" and not any(i in consts for i in n.input)]


def _named(proto) -> None:
    """Give every node a unique name (exclusion lists and sidecars refer to nodes by name)."""
    seen = set()
    for idx, node in enumerate(proto.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{idx}"
        seen.add(node.name)


def quantized_op_counts(proto) -> Dict[str, int]:
    """Count of quantised compute nodes per op type: Conv/MatMul/Gemm fed by DequantizeLinear (QDQ),
    plus the integer ops of dynamic quantisation."""
    dq = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    counts: Dict[str, int] = {}
    for n in proto.graph.node:
        if n.op_type in STATIC_OP_TYPES and any(i in dq for i in n.input):
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    counts.update({k: v for k, v in ((t, sum(n.op_type == t for n in proto.graph.node))
                                    for t in ("MatMulInteger", "DynamicQuantizeLinear", "ConvInteger")) if v})
    return counts


# ---- error against FP32 --------------------------------------------------------------------------
def _session(path, threads: Optional[int] = None):
    from ckd_ros.runtime.ort_backend import import_onnxruntime

    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def compare_to_fp32(fp32_path, int8_path, samples: Sequence[Dict[str, np.ndarray]], threads=None,
                    extra_outputs: Sequence[str] = ()) -> Dict[str, object]:
    """Error of the INT8 graph against the FP32 graph on `samples` (dicts of the four inputs).

    Returns per map the max and mean absolute error (map units: score in [0, 1], size normalised
    to the search crop, offset in feature cells), `argmax_agreement` (fraction of samples whose
    score-map argmax cell is the same) and, for each name in `extra_outputs` (e.g. kept_idx_<j> of a
    debug export), the fraction of samples whose output set is equal.
    """
    if not samples:
        raise InputError("no samples to compare FP32 and INT8 on")
    names = list(OUTPUT_NAMES) + list(extra_outputs)
    ref_s, q_s = _session(fp32_path, threads), _session(int8_path, threads)
    max_err = {n: 0.0 for n in OUTPUT_NAMES}
    sum_err = {n: 0.0 for n in OUTPUT_NAMES}
    same_cell = 0
    same_set = {n: 0 for n in extra_outputs}
    for feeds in samples:
        ref = dict(zip(names, ref_s.run(names, feeds)))
        got = dict(zip(names, q_s.run(names, feeds)))
        for n in OUTPUT_NAMES:
            d = np.abs(got[n] - ref[n])
            max_err[n] = max(max_err[n], float(d.max()))
            sum_err[n] += float(d.mean())
        same_cell += int(got["score_map"].reshape(-1).argmax() == ref["score_map"].reshape(-1).argmax())
        for n in extra_outputs:
            same_set[n] += int(set(got[n].reshape(-1).tolist()) == set(ref[n].reshape(-1).tolist()))
    k = len(samples)
    out: Dict[str, object] = {"samples": k, "argmax_agreement": same_cell / k}
    for n in OUTPUT_NAMES:
        out[f"{n}_max_abs"] = max_err[n]
        out[f"{n}_mean_abs"] = sum_err[n] / k
    if extra_outputs:
        out["kept_set_agreement"] = {n: same_set[n] / k for n in extra_outputs}
    return out


# ---- quantization --------------------------------------------------------------------------------
def _import_quantization():
    try:
        from onnxruntime import quantization
    except ImportError as exc:
        raise DependencyError(f"onnxruntime.quantization is not available ({exc}): pip install onnxruntime") from exc
    return quantization


def quantize_onnx(fp32_path, out_path, *, method: str = "static",
                  samples: Optional[Sequence[Dict[str, np.ndarray]]] = None,
                  eval_samples: Optional[Sequence[Dict[str, np.ndarray]]] = None,
                  calibration: Optional[Dict[str, object]] = None,
                  exclude: Iterable[str] = (), quantize_activation_matmuls: bool = False, int8_head: bool = False,
                  threads: Optional[int] = None, write_sidecar: bool = True, symmetric: bool = True,
                  calibrate_method: str = "MinMax", log=None) -> Dict[str, object]:
    """Quantise a `ckd export` FP32 ONNX file to INT8; return the metadata written with it.

    fp32_path: ONNX from `ckd export` (static shapes, inputs z_rgb, z_tir (1,3,T,T), x_rgb, x_tir
    (1,3,S,S) float32). method "static": `samples` (recorded network inputs, see InputRecorder) set
    the activation ranges (MinMax); "dynamic": no samples needed. `eval_samples` (held out from
    calibration) measure the error against FP32 (compare_to_fp32); `calibration` describes the data
    for the sidecar. `exclude`: further node names to keep FP32; `int8_head` also quantises the box
    head, `quantize_activation_matmuls` the attention MatMuls (both off: measured worse). Raises
    InputError (bad input file or no samples) and CKDError when the quantised graph breaks
    `ckd export`'s deployment rules.
    Method: ONNX Runtime quantization tools (QDQ, per-channel weights; docs/deployment.md "INT8").
    """
    import onnx

    from ckd_ros.fileio import atomic_path, atomic_write_text
    from ckd_ros.model.export import METADATA_KEY, check_graph, read_metadata, sidecar_path

    q = _import_quantization()
    logf = log or (lambda msg: None)
    if method not in METHODS:
        raise InputError(f"quantization method must be one of {METHODS}, got {method!r}")
    fp32_path, out_path = pathlib.Path(fp32_path), pathlib.Path(out_path)
    if not fp32_path.is_file():
        raise InputError(f"ONNX file not found: {fp32_path}")
    if fp32_path.resolve() == out_path.resolve():
        raise InputError("the INT8 output must not overwrite the FP32 input; give another -o path")
    meta = read_metadata(fp32_path)
    if meta.get("quantization"):
        raise InputError(f"{fp32_path} is already quantized; give the FP32 file from `ckd export`")
    if method == "static" and not samples:
        raise InputError("static quantization needs calibration samples (or use --method dynamic)")
    proto = onnx.load(str(fp32_path))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    _named(proto)
    excluded = set(exclude) | (set() if quantize_activation_matmuls else set(activation_matmuls(proto)))
    excluded = sorted(excluded | (set() if int8_head else set(head_nodes(proto))))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ckd_quant_") as tmp:
        named = pathlib.Path(tmp) / "named.onnx"
        onnx.save(proto, str(named))
        raw = pathlib.Path(tmp) / "int8.onnx"
        if method == "static":
            q.quantize_static(
                str(named), str(raw), _Reader(samples), quant_format=q.QuantFormat.QDQ,
                op_types_to_quantize=list(STATIC_OP_TYPES), per_channel=True,
                activation_type=q.QuantType.QInt8 if symmetric else q.QuantType.QUInt8,
                weight_type=q.QuantType.QInt8,
                nodes_to_exclude=excluded, calibrate_method=getattr(q.CalibrationMethod, calibrate_method),
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                               "MatMulConstBOnly": not quantize_activation_matmuls,
                               "CalibMaxIntermediateOutputs": _merge_every(len(samples)),
                               "CalibTensorRangeSymmetric": symmetric})
        else:
            q.quantize_dynamic(str(named), str(raw), op_types_to_quantize=list(DYNAMIC_OP_TYPES),
                               per_channel=False, weight_type=q.QuantType.QInt8, nodes_to_exclude=excluded,
                               extra_options={"MatMulConstBOnly": True})
        qproto = onnx.load(str(raw))
    seconds = time.monotonic() - t0
    problems = check_graph(qproto, opset)
    if problems:
        raise CKDError(f"quantized graph breaks deployment rules: {'; '.join(problems)}")
    qmeta = {
        "method": method,
        "format": "QDQ" if method == "static" else "dynamic (MatMulInteger)",
        "tool": f"onnxruntime.quantization {_ort_version()}",
        "weights": "int8 symmetric, per output channel" if method == "static" else "int8 symmetric, per tensor",
        "activations": ("int8 symmetric, MinMax calibration" if method == "static"
                        else "uint8, quantized at run time per tensor"),
        "op_types": list(STATIC_OP_TYPES if method == "static" else DYNAMIC_OP_TYPES),
        "quantized_ops": quantized_op_counts(qproto),
        "excluded_nodes": excluded,
        "fp32_parts": [p for p, on in (("attention q.k^T / attn.v MatMuls", not quantize_activation_matmuls),
                                       ("box head", not int8_head)) if on],
        "calibration": dict(calibration or {}, samples=len(samples or [])) if method == "static" else None,
        "source": {"path": str(fp32_path), "sha256": _sha(fp32_path)},
        "seconds": round(seconds, 1),
    }
    out_meta = dict(meta, quantization=qmeta, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    del qproto.metadata_props[:]
    entry = qproto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(out_meta, sort_keys=True)
    qproto.producer_name = "ckd_ros"
    with atomic_path(out_path) as tmp:  # an interrupted run never leaves a truncated INT8 file
        onnx.save(qproto, str(tmp))
    if eval_samples:
        qmeta["error_vs_fp32"] = compare_to_fp32(fp32_path, out_path, eval_samples, threads)
        err = qmeta["error_vs_fp32"]
        logf(f"INT8 vs FP32 on {err['samples']} held-out inputs: score max {err['score_map_max_abs']:.3g} "
             f"mean {err['score_map_mean_abs']:.3g}, size max {err['size_map_max_abs']:.3g}, offset max "
             f"{err['offset_map_max_abs']:.3g}, argmax agreement {100 * err['argmax_agreement']:.1f}%")
        entry.value = json.dumps(out_meta, sort_keys=True)
        with atomic_path(out_path) as tmp:
            onnx.save(qproto, str(tmp))
    if write_sidecar:
        atomic_write_text(sidecar_path(out_path), json.dumps(out_meta, indent=1, sort_keys=True))
    logf(f"quantized ({method}) {out_path}: {out_path.stat().st_size / 2**20:.1f} MiB "
         f"(FP32 {fp32_path.stat().st_size / 2**20:.1f} MiB) in {seconds:.1f} s")
    return out_meta


def random_samples(config, n: int = 8, seed: int = 0) -> List[Dict[str, np.ndarray]]:
    """`n` dicts of standard-normal network inputs (calibration for speed measurements only)."""
    from ckd_ros.runtime.bench import random_inputs

    return [dict(zip(INPUT_NAMES, [*z, *x])) for z, x in (random_inputs(config, seed + i) for i in range(n))]


def ensure_int8(cache, fp32_path, config, *, samples: int = 8, log=None) -> pathlib.Path:
    """INT8 (static QDQ) copy of `fp32_path` in the artifact cache, calibrated on random inputs.

    For latency measurements (`ckd latency --precision int8`): speed does not depend on the values,
    accuracy does, so deployed files come from `ckd quantize` with real calibration data.
    """
    from ckd_ros.runtime.cache import key_digest

    key = {"source_sha256": _sha(fp32_path), "method": "static", "calibration": f"random normal x{samples}",
           "onnxruntime": _ort_version(), "op_types": list(STATIC_OP_TYPES),
           "fp32": ["attention matmuls", "box head"]}
    path = cache.path("onnx-int8", f"{pathlib.Path(fp32_path).stem}-{key_digest(key)[:12]}-int8.onnx")

    def produce(tmp: pathlib.Path) -> None:
        quantize_onnx(fp32_path, tmp, samples=random_samples(config, samples),
                      calibration={"source": f"random normal x{samples} (speed only)"}, write_sidecar=False)

    path, _ = cache.ensure(path, key, produce, what="INT8 ONNX", log=log)
    return path


def _merge_every(n: int, k: int = 16) -> int:
    """Calibration merges min/max every k samples (bounded memory). onnxruntime 1.23 raises 'No data
    is collected' when k divides the sample count exactly (nothing left for the last merge)."""
    while k > 2 and n % k == 0:
        k -= 1
    return k


def is_int8(onnx_path) -> bool:
    """True when `onnx_path` was written by `ckd quantize` (its metadata has a quantization block).

    Torch-free (the node's int8 check on a robot): reads the metadata through `model.onnx_meta`."""
    from ckd_ros.model.onnx_meta import read_metadata

    try:
        return bool(read_metadata(onnx_path).get("quantization"))
    except CKDError:
        return False


def _sha(path) -> str:
    from ckd_ros.hashing import file_sha256

    return file_sha256(path)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def split_samples(samples: Sequence[Dict[str, np.ndarray]], eval_every: int = 4):
    """(calibration, held-out): every `eval_every`-th sample is held out for the error measurement."""
    if eval_every < 2 or len(samples) < 2:
        return list(samples), []
    calib = [s for i, s in enumerate(samples) if i % eval_every != eval_every - 1]
    held = [s for i, s in enumerate(samples) if i % eval_every == eval_every - 1]
    return calib, held
