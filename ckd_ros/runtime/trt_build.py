"""Build a TensorRT engine from an ONNX file with the TensorRT Python API, straight into a file.

Works with TensorRT 8.5 .. 10.x (`tensorrt`) and with TensorRT-RTX (`tensorrt_rtx`, same API family),
which CI uses to check on a CPU-only machine that a TensorRT parser accepts the exported graph.
A build of the two-branch ViT-B takes minutes on a Jetson, so progress is logged: per top-level
build phase through trt.IProgressMonitor where it exists (TensorRT >= 9.0), and a heartbeat line
every 30 s on every version (TensorRT >= 9 reports only ~6 top-level steps, issue 17.9).

Precisions (ckd_ros.runtime.options.PRECISIONS):
- fp32: the TF32 flag is cleared (true FP32).
- fp16: FP16 flag; a graph whose LayerNorm is decomposed (export mode `trt85`, for TensorRT 8.5)
  keeps its normalisation layers in FP32 (ILayer.precision + output types, OBEY_PRECISION_CONSTRAINTS).
- int8: explicit quantization from a QDQ ONNX file (`ckd quantize`): INT8 flag plus FP16 for the
  layers that are not quantized; a graph without Quantize/Dequantize layers is refused.

Memory on 8 GB Orins (issue 17.9): the serialized engine is written to its file directly from
TensorRT's host memory, after the builder, network, parser and config are dropped; no bytes copy.
"""
from __future__ import annotations

import pathlib
import re
import threading
import time
from typing import Callable, Optional

from ckd_ros.errors import BackendError, CheckpointError, DependencyError
from ckd_ros.runtime.cache import as_log, atomic_write_bytes
from ckd_ros.runtime.options import check_precision
from ckd_ros.runtime.trt_common import create_builder, import_tensorrt, process_logger, trt_major

HEARTBEAT_S = 30.0
#: TensorRT layer names of normalisation modules (ONNX node scopes like /blocks.3/norm1/ReduceMean)
NORM_SCOPE = re.compile(r"(^|/)[A-Za-z_]*norm[A-Za-z_0-9]*(/|$)", re.IGNORECASE)

__all__ = ["build_engine", "build_engine_bytes", "parse_onnx", "import_tensorrt", "make_progress_monitor",
           "pin_norm_layers_fp32", "HEARTBEAT_S"]


def make_progress_monitor(trt, log: Callable[[str], None]):
    """Log top-level build phases and coarse step progress; None where TensorRT has no monitor."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class _Monitor(base):
        def __init__(self):
            base.__init__(self)
            self.phases = {}
            self.t0 = time.monotonic()

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.phases[phase_name] = (parent_phase, num_steps, 0)
            if parent_phase is None:  # nested phases would flood a Jetson console
                log(f"engine build: {phase_name} ({num_steps} steps) at {time.monotonic() - self.t0:.0f} s")

        def step_complete(self, phase_name, step):
            parent, n, last = self.phases.get(phase_name, (None, 0, 0))
            if parent is None and n >= 10:
                pct = int(100 * (step + 1) / n) // 25 * 25
                if pct > last and pct < 100:
                    log(f"engine build: {phase_name} {pct}%")
                self.phases[phase_name] = (parent, n, max(pct, last))
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            self.phases.pop(phase_name, None)

    return _Monitor()


class _Heartbeat:
    """'still building (N s)' every HEARTBEAT_S seconds while a build runs, on every TensorRT version."""

    def __init__(self, log, period=None):
        self.log, self.period = log, HEARTBEAT_S if period is None else period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="trt-build-heartbeat", daemon=True)

    def _run(self):
        t0 = time.monotonic()
        while not self.stop.wait(self.period):
            self.log(f"engine build: still building ({time.monotonic() - t0:.0f} s)")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=1)


def _create_network(trt, builder):
    flags = 0
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if explicit is not None and trt_major(trt) < 10:  # 8.x needs it; 10 ignores it (deprecated)
        flags = 1 << int(explicit)
    return builder.create_network(flags)


def parse_onnx(trt, builder, logger, onnx_path):
    """(network, parser); CheckpointError listing the parser's complaints."""
    network = _create_network(trt, builder)
    parser = trt.OnnxParser(network, logger)
    onnx_path = pathlib.Path(onnx_path)
    ok = parser.parse_from_file(str(onnx_path)) if hasattr(parser, "parse_from_file") else \
        parser.parse(onnx_path.read_bytes())
    if not ok:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        hint = ("; TensorRT < 8.6 has no LayerNormalization: re-export with `ckd export --mode trt85`"
                if any("LayerNormalization" in e for e in errors) else "")
        raise CheckpointError(f"TensorRT ({trt.__name__} {trt.__version__}) could not parse {onnx_path.name}: "
                              + " | ".join(errors[:5]) + hint)
    return network, parser


def _layers(network):
    return [network.get_layer(i) for i in range(network.num_layers)]


def is_qdq_network(trt, network) -> bool:
    """True when the parsed graph has Quantize/Dequantize layers (explicit quantization)."""
    kinds = {getattr(trt.LayerType, n, None) for n in ("QUANTIZE", "DEQUANTIZE")} - {None}
    return any(layer.type in kinds for layer in _layers(network))


def pin_norm_layers_fp32(trt, network) -> int:
    """Run the layers of decomposed normalisations (scope `.../norm*/...`, float outputs) in FP32:
    ILayer.precision and every float output type; returns how many were pinned. The builder must
    also set OBEY_PRECISION_CONSTRAINTS for TensorRT to honour it (not merely prefer it)."""
    norm_type = getattr(trt.LayerType, "NORMALIZATION", None)
    float_types = {trt.float32, trt.float16}
    n = 0
    for layer in _layers(network):
        if not NORM_SCOPE.search(layer.name or "") or (norm_type is not None and layer.type == norm_type):
            continue
        outs = [i for i in range(layer.num_outputs) if layer.get_output(i).dtype in float_types]
        if not outs:
            continue  # shape/index arithmetic inside the scope
        layer.precision = trt.float32
        for i in outs:
            layer.set_output_type(i, trt.float32)
        n += 1
    return n


def has_decomposed_norms(trt, network) -> bool:
    """True when normalisation scopes hold Reduce layers: LayerNorm exported decomposed (export mode
    `trt85`, opset 16) rather than as one NORMALIZATION layer. Read from the parsed network, so it
    needs no metadata and holds for foreign ONNX files too."""
    reduce_type = getattr(trt.LayerType, "REDUCE", None)
    return any(layer.type == reduce_type and NORM_SCOPE.search(layer.name or "") for layer in _layers(network))


def _flag(trt, name: str, precision: str):
    flag = getattr(trt.BuilderFlag, name, None)
    if flag is None:  # TensorRT 11 / TensorRT-RTX: strongly typed, precision comes from the ONNX
        raise DependencyError(f"{trt.__name__} {trt.__version__} has no {name} builder flag; "
                              f"{precision} needs TensorRT 8.5-10.x (build fp32 here)")
    return flag


def _configure_precision(trt, config, network, precision: str, onnx_path, log) -> None:
    if precision == "fp32":
        if getattr(trt.BuilderFlag, "TF32", None) is not None:
            # TensorRT enables TF32 by default on Ampere+ (10-bit mantissa); "fp32" means real FP32 here
            config.clear_flag(trt.BuilderFlag.TF32)
        return
    if precision == "int8":
        if not is_qdq_network(trt, network):
            raise CheckpointError(f"{pathlib.Path(onnx_path).name} has no QuantizeLinear/DequantizeLinear nodes: "
                                  "int8 needs the QDQ ONNX file from `ckd quantize`")
        config.set_flag(_flag(trt, "INT8", precision))
        fp16 = getattr(trt.BuilderFlag, "FP16", None)
        if fp16 is not None:  # layers outside Q/DQ pairs run in FP16 rather than FP32
            config.set_flag(fp16)
    else:
        config.set_flag(_flag(trt, "FP16", precision))
    if has_decomposed_norms(trt, network):
        n = pin_norm_layers_fp32(trt, network)
        config.set_flag(_flag(trt, "OBEY_PRECISION_CONSTRAINTS", precision))
        log(f"engine build: {n} normalisation layers kept in FP32 (LayerNorm decomposed for TensorRT < 8.6)")


def build_engine(onnx_path, out_path, *, precision: str = "fp32", workspace_mb: int = 2048,
                 timing_cache_path=None, log=None, trt=None, verbose: bool = False,
                 write: Optional[Callable[[memoryview], None]] = None) -> int:
    """Parse `onnx_path` and build an engine into `out_path`; return its size in bytes.

    precision: fp32 / fp16 / int8 (see the module docstring). `write` replaces the file write (it
    receives TensorRT's serialized host memory as a memoryview). Raises CheckpointError (parser
    refused the graph, non-QDQ file for int8), DependencyError (TensorRT cannot be used here or
    lacks the precision), BackendError (the build failed)."""
    log = as_log(log)
    check_precision(precision)
    trt = trt if trt is not None else import_tensorrt()
    logger = process_logger(trt)
    with logger.capture(log, verbose):
        builder = create_builder(trt, log)
        network, parser = parse_onnx(trt, builder, logger, onnx_path)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
        _configure_precision(trt, config, network, precision, onnx_path, log)
        monitor = make_progress_monitor(trt, log)
        if monitor is not None:
            config.progress_monitor = monitor
        cache = _load_timing_cache(trt, config, timing_cache_path, log)
        log(f"engine build: {trt.__name__} {trt.__version__}, {precision}, workspace {workspace_mb} MiB, "
            f"{network.num_layers} layers from {pathlib.Path(onnx_path).name}")
        t0 = time.monotonic()
        with _Heartbeat(log):
            serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError("TensorRT failed to build the engine (see the TensorRT errors above)")
        _save_timing_cache(cache, timing_cache_path, log)
        # drop everything the build held before the engine is written (8 GB boards share memory)
        del cache, monitor, config, parser, network, builder
        data = memoryview(serialized)
        nbytes = data.nbytes
        if write is not None:
            write(data)
        else:
            with open(out_path, "wb") as f:
                f.write(data)
        del data, serialized
    log(f"engine build: done in {time.monotonic() - t0:.1f} s ({nbytes / 2**20:.1f} MiB)")
    return nbytes


def build_engine_bytes(onnx_path, *, precision: str = "fp32", workspace_mb: int = 2048,
                       timing_cache_path=None, log=None, trt=None, verbose: bool = False) -> bytes:
    """build_engine() returning the serialized engine as bytes (tests, the CPU parser check)."""
    out = []
    build_engine(onnx_path, None, precision=precision, workspace_mb=workspace_mb,
                 timing_cache_path=timing_cache_path, log=log, trt=trt, verbose=verbose,
                 write=lambda mv: out.append(bytes(mv)))
    return out[0]


def _timing_cache_supported(trt) -> bool:
    return trt.__name__ != "tensorrt_rtx"  # TensorRT-RTX: timing-cache calls are deprecated no-ops


def _load_timing_cache(trt, config, path, log):
    if path is None or not _timing_cache_supported(trt):
        return None
    path = pathlib.Path(path)
    data = path.read_bytes() if path.exists() else b""
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        log(f"timing cache {path} unusable; starting a fresh one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=True)
    return cache


def _save_timing_cache(cache, path, log):
    if cache is None or path is None:
        return
    try:
        atomic_write_bytes(path, bytes(memoryview(cache.serialize())))
    except OSError as exc:  # a timing cache is an optimisation only
        log(f"could not save timing cache {path}: {exc}")
