"""Build a serialized TensorRT engine from an ONNX file with the TensorRT Python API.

Works with TensorRT 8.5 .. 10.x (`tensorrt`) and with TensorRT-RTX (`tensorrt_rtx`, same API family),
which CI uses to check on a CPU-only machine that a TensorRT parser accepts the exported graph.
A build of the two-branch ViT-B takes minutes on a Jetson, so progress is logged: per build phase
through trt.IProgressMonitor where it exists (TensorRT >= 10), else a heartbeat line every 30 s.
"""
from __future__ import annotations

import importlib
import os
import pathlib
import threading
import time
from typing import Callable, Optional

from ckd_ros.errors import CKDError
from ckd_ros.runtime.cache import as_log, atomic_write_bytes

PRECISIONS = ("fp32", "fp16")
HEARTBEAT_S = 30.0


def import_tensorrt(module: Optional[str] = None):
    """Import the TensorRT bindings ('tensorrt' by default; 'tensorrt_rtx' for the CPU parser check)."""
    name = module or os.environ.get("CKD_TRT_MODULE") or "tensorrt"
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        hint = ("on Jetson: sudo apt install python3-libnvinfer (JetPack); elsewhere: pip install tensorrt"
                if name == "tensorrt" else f"pip install {name.replace('_', '-')}")
        raise CKDError(f"TensorRT Python module '{name}' is not importable ({exc}); {hint}") from exc


def trt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


def make_logger(trt, log: Callable[[str], None], verbose: bool = False):
    """A trt.ILogger that forwards warnings and errors (and info when verbose) to `log`."""
    threshold = trt.Logger.Severity.INFO if verbose else trt.Logger.Severity.WARNING

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if int(severity) <= int(threshold):
                log(f"[TensorRT {severity.name}] {msg}")

    return _Logger()


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
    """'still building' every HEARTBEAT_S seconds, for TensorRT versions without IProgressMonitor."""

    def __init__(self, log, period=HEARTBEAT_S):
        self.log, self.period = log, period
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
    """(network, parser); raises CKDError listing the parser's complaints."""
    network = _create_network(trt, builder)
    parser = trt.OnnxParser(network, logger)
    onnx_path = pathlib.Path(onnx_path)
    ok = parser.parse_from_file(str(onnx_path)) if hasattr(parser, "parse_from_file") else \
        parser.parse(onnx_path.read_bytes())
    if not ok:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise CKDError(f"TensorRT ({trt.__name__} {trt.__version__}) could not parse {onnx_path.name}: "
                       + " | ".join(errors[:5]))
    return network, parser


def build_engine_bytes(onnx_path, *, precision: str = "fp32", workspace_mb: int = 2048,
                       timing_cache_path=None, log=None, trt=None, verbose: bool = False) -> bytes:
    """Parse + build; return the serialized engine. Raises CKDError on any failure."""
    log = as_log(log)
    if precision not in PRECISIONS:
        raise CKDError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    trt = trt if trt is not None else import_tensorrt()
    logger = make_logger(trt, log, verbose)
    builder = trt.Builder(logger)
    network, _parser = parse_onnx(trt, builder, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if precision == "fp16":
        flag = getattr(trt.BuilderFlag, "FP16", None)
        if flag is None:  # TensorRT 11 / TensorRT-RTX: strongly typed, precision comes from the ONNX
            raise CKDError(f"{trt.__name__} {trt.__version__} has no FP16 builder flag; "
                           "build fp32 or export an FP16 ONNX file")
        config.set_flag(flag)
    elif getattr(trt.BuilderFlag, "TF32", None) is not None:
        # TensorRT enables TF32 by default on Ampere+ (10-bit mantissa); "fp32" means real FP32 here
        config.clear_flag(trt.BuilderFlag.TF32)
    monitor = make_progress_monitor(trt, log)
    if monitor is not None:
        config.progress_monitor = monitor
    cache = _load_timing_cache(trt, config, timing_cache_path, log)
    log(f"engine build: {trt.__name__} {trt.__version__}, {precision}, workspace {workspace_mb} MiB, "
        f"{network.num_layers} layers from {pathlib.Path(onnx_path).name}")
    t0 = time.monotonic()
    if monitor is None:
        with _Heartbeat(log):
            serialized = builder.build_serialized_network(network, config)
    else:
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise CKDError("TensorRT failed to build the engine (see the TensorRT errors above)")
    data = bytes(memoryview(serialized))
    log(f"engine build: done in {time.monotonic() - t0:.1f} s ({len(data) / 2**20:.1f} MiB)")
    _save_timing_cache(cache, timing_cache_path, log)
    return data


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
