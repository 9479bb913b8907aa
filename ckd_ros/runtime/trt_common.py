"""TensorRT bindings: import, the one process-wide logger, and runtime/builder creation that fails loudly.

- One logger per process and TensorRT module (issue 17.9): TensorRT keeps the first ILogger it is
  given for the whole process ("the logger passed into createInferRuntime differs from one already
  provided"), so a second logger object would silently get nothing. Messages go to the sink of the
  innermost `capture()` (or the last `set_sink`), so each build/backend still logs where its caller wants.
- An error the logger reports while a `trt.Runtime` or `trt.Builder` is created, or a None result,
  becomes a DependencyError naming the install line that matches the driver (issue 17.4): on a
  driver older than the TensorRT wheel's CUDA, `trt.Runtime` returns an object whose next call segfaults.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import threading
from typing import Callable, List, Optional

from ckd_ros.errors import BackendError, DependencyError
from ckd_ros.runtime.cache import as_log

_LOCK = threading.Lock()
_LOGGERS = {}


def import_tensorrt(module: Optional[str] = None):
    """Import the TensorRT bindings ('tensorrt' by default; 'tensorrt_rtx' for the CPU parser check,
    or $CKD_TRT_MODULE). DependencyError with the install line for this machine when missing."""
    name = module or os.environ.get("CKD_TRT_MODULE") or "tensorrt"
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if name == "tensorrt":
            from ckd_ros.runtime.gpu import probe_gpu, tensorrt_hint

            gpu = probe_gpu()
            hint = tensorrt_hint(gpu) if gpu.available or gpu.is_jetson else \
                "on Jetson: sudo apt install python3-libnvinfer; on a PC: the tensorrt-cuXX wheel of the driver's CUDA"
        else:
            hint = f"pip install {name.replace('_', '-')}"
        raise DependencyError(f"TensorRT Python module '{name}' is not importable ({exc}); {hint}") from exc


def trt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


def process_logger(trt, log: Optional[Callable[[str], None]] = None):
    """The process's one trt.ILogger for module `trt` (created on first use). `log` becomes its
    default sink when given. Messages at WARNING and above are forwarded (INFO with verbose sinks)."""
    with _LOCK:
        entry = _LOGGERS.get(id(trt))
        if entry is None:
            entry = _LOGGERS[id(trt)] = (trt, _make_logger_class(trt)())  # holds the module: ids stay unique
        logger = entry[1]
    if log is not None:
        logger.default_sink = as_log(log)
    return logger


def _make_logger_class(trt):
    severity = trt.Logger.Severity

    class _ProcessLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.default_sink = as_log(None)
            self.local = threading.local()

        def _frames(self) -> list:
            if not hasattr(self.local, "frames"):
                self.local.frames = []
            return self.local.frames

        def log(self, sev, msg):
            frames = self._frames()
            sink, verbose, errors = frames[-1] if frames else (self.default_sink, False, None)
            threshold = severity.INFO if verbose else severity.WARNING
            if int(sev) <= int(severity.ERROR) and errors is not None:
                errors.append(str(msg))
            if int(sev) <= int(threshold):
                sink(f"[TensorRT {getattr(sev, 'name', sev)}] {msg}")

        @contextlib.contextmanager
        def capture(self, sink, verbose: bool = False):
            """Route this thread's TensorRT messages to `sink`; yields the list of errors logged."""
            errors: List[str] = []
            frames = self._frames()
            frames.append((as_log(sink), verbose, errors))
            try:
                yield errors
            finally:
                frames.pop()

    return _ProcessLogger


def _hint(trt) -> str:
    from ckd_ros.runtime.gpu import probe_gpu, tensorrt_hint

    return tensorrt_hint(probe_gpu())


def _create(trt, what: str, factory, log):
    logger = process_logger(trt)
    with logger.capture(log) as errors:
        try:
            obj = factory(logger)
        except (RuntimeError, TypeError) as exc:  # pybind11 translates C++ failures to these
            raise BackendError(f"TensorRT {trt.__version__} could not create a {what}: {exc}") from exc
    if obj is None or errors:
        detail = errors[0] if errors else "it returned None"
        raise DependencyError(f"TensorRT {trt.__version__} could not create a {what} ({detail}); "
                              f"the install does not match this driver: {_hint(trt)}")
    return obj


def create_runtime(trt, log=None):
    """trt.Runtime on the process logger; DependencyError when TensorRT reports an error doing so."""
    return _create(trt, "runtime", trt.Runtime, log)


def create_builder(trt, log=None):
    """trt.Builder on the process logger; DependencyError when TensorRT reports an error doing so."""
    return _create(trt, "builder", trt.Builder, log)
