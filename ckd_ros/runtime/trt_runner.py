"""Run a TensorRT engine: named-tensor API (TensorRT 8.5 .. 10.x), pinned buffers, one stream.

Per frame only the two search crops go to the GPU: the template pair is uploaded once per track
(`set_template`), because CKD never updates it. With `cuda_graph=True` the per-frame sequence
(2 uploads, enqueue, 3 downloads) is captured once and replayed, cutting launch overhead; all
shapes and addresses are fixed, which is what a graph needs (the sequence matches trtexec's).
Stream waits never hold the GIL (cuda_mem.Cuda.sync). `close()` takes the same lock as inference,
so buffers are never freed under a running frame (issue 17.5). A failed graph capture ends the
capture, destroys the graph, clears the sticky CUDA error and runs one eager health-check frame.
"""
from __future__ import annotations

import threading
from typing import Dict

import numpy as np

from ckd_ros.errors import BackendError, CheckpointError, CKDError
from ckd_ros.model.io_spec import INPUT_NAMES, OUTPUT_NAMES, SEARCH_INPUTS, TEMPLATE_INPUTS, io_shapes
from ckd_ros.runtime.base import Backend, Maps
from ckd_ros.runtime.cache import as_log
from ckd_ros.runtime.cuda_mem import Cuda, IOBuffer


def engine_io(trt, engine) -> Dict[str, tuple]:
    """name -> (shape, numpy dtype, is_input) for every I/O tensor of the engine."""
    io = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        shape = tuple(engine.get_tensor_shape(name))
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        io[name] = (shape, dtype, is_input)
    return io


def validate_io(io: Dict[str, tuple], config=None) -> None:
    """CheckpointError unless the engine has exactly our four float32 inputs and at least our three
    maps, static shapes, and (given a config) the shapes of ckd_ros.model.io_spec.io_shapes."""
    inputs = sorted(n for n, (_, _, is_in) in io.items() if is_in)
    if inputs != sorted(INPUT_NAMES):
        raise CheckpointError(f"engine inputs {inputs} are not the CKD inputs {sorted(INPUT_NAMES)}; "
                       "was it built from a `ckd export` ONNX file?")
    missing = [n for n in OUTPUT_NAMES if n not in io or io[n][2]]
    if missing:
        raise CheckpointError(f"engine lacks outputs {missing}")
    for name in INPUT_NAMES + OUTPUT_NAMES:
        shape, dtype, _ = io[name]
        if any(d < 0 for d in shape):
            raise CheckpointError(f"engine tensor {name} has a dynamic shape {shape}; export with static shapes")
        if dtype != np.float32:
            raise CheckpointError(f"engine tensor {name} is {dtype}, expected float32")
    if config is not None:
        want = io_shapes(config)
        bad = {n: io[n][0] for n in want if io[n][0] != want[n]}
        if bad:
            raise CheckpointError(f"engine shapes {bad} do not match the model config (expected "
                           + ", ".join(f"{n}={want[n]}" for n in bad) + ")")


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, engine, *, trt, config=None, precision: str = "fp32", cuda_graph: bool = False,
                 engine_path=None, runtime=None, cudart=None, log=None, reason: str = ""):
        super().__init__()
        self._log = as_log(log)
        self.config, self.precision, self.reason = config, precision, reason
        self.engine_path = engine_path
        self._trt, self._engine = trt, engine
        self._runtime = runtime  # the trt.Runtime must outlive its engine
        self._lock = threading.Lock()  # one execution context: serialise callers
        self._bufs: Dict[str, IOBuffer] = {}
        self._stream = None
        self._graph = self._graph_exec = None
        self._context = None
        self._template_ready = False
        self._closed = False
        io = engine_io(trt, engine)
        validate_io(io, config)
        self._cuda = Cuda(cudart)
        try:
            self._context = engine.create_execution_context()
            if self._context is None:
                raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
            self._stream = self._cuda.stream()
            for name, (shape, dtype, is_input) in io.items():
                self._bufs[name] = IOBuffer(self._cuda, name, shape, dtype, is_input)
                if not self._context.set_tensor_address(name, self._bufs[name].device_ptr):
                    raise BackendError(f"TensorRT rejected the address of tensor {name}")
        except Exception:
            self._close_locked()
            raise
        self._use_graph = cuda_graph

    # -- Backend interface -------------------------------------------------------------------
    def set_template(self, z_rgb: np.ndarray, z_tir: np.ndarray) -> None:
        with self._lock:
            self._check_open()
            for name, arr in zip(TEMPLATE_INPUTS, (z_rgb, z_tir)):
                self._fill(name, arr)
                self._bufs[name].upload(self._stream)
            self._cuda.sync(self._stream)
            self._template_ready = True

    def infer_search(self, x_rgb: np.ndarray, x_tir: np.ndarray) -> Maps:
        with self._lock:
            self._check_open()
            if not self._template_ready:
                raise RuntimeError("set_template() must be called before infer_search()")
            for name, arr in zip(SEARCH_INPUTS, (x_rgb, x_tir)):
                self._fill(name, arr)
            if self._graph_exec is not None:
                self._cuda.call("cudaGraphLaunch", self._graph_exec, self._stream)
            else:
                self._enqueue_frame()
                if self._use_graph:
                    self._capture_graph()
            self._cuda.sync(self._stream)
            return {n: self._bufs[n].host.copy() for n in OUTPUT_NAMES}

    def infer(self, z_rgb, z_tir, x_rgb, x_tir) -> Maps:
        self.set_template(z_rgb, z_tir)
        return self.infer_search(x_rgb, x_tir)

    def describe(self) -> str:
        graph = ", CUDA graph" if self._use_graph else ""
        return (f"tensorrt ({self._trt.__name__} {self._trt.__version__}, {self.precision}{graph}, "
                f"engine {self.engine_path})")

    def close(self) -> None:
        """Free the graph, buffers, stream, context and engine. Waits for a running inference (the
        inference lock), so a node stopping while its worker is mid-frame cannot free live buffers."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._closed:
            return
        self._closed = True
        rt = self._cuda.rt if hasattr(self, "_cuda") else None
        if rt is not None:
            if self._graph_exec is not None:
                rt.cudaGraphExecDestroy(self._graph_exec)
            if self._graph is not None:
                rt.cudaGraphDestroy(self._graph)
            if self._stream is not None:
                try:
                    self._cuda.sync(self._stream)
                except CKDError:
                    pass  # freeing anyway
        for buf in self._bufs.values():
            buf.free()
        self._bufs.clear()
        if rt is not None and self._stream is not None:
            rt.cudaStreamDestroy(self._stream)
        self._graph_exec = self._graph = self._stream = None
        self._context = None
        self._engine = None
        self._runtime = None

    # -- internals ---------------------------------------------------------------------------
    def _check_open(self):
        if self._closed:
            raise BackendError("TensorRT backend is closed")

    def _fill(self, name: str, arr: np.ndarray) -> None:
        buf = self._bufs[name]
        arr = np.asarray(arr)
        if arr.shape != buf.shape:
            raise BackendError(f"input {name} has shape {arr.shape}, the engine expects {buf.shape}")
        np.copyto(buf.host, arr, casting="same_kind")

    def _enqueue_frame(self) -> None:
        for name in SEARCH_INPUTS:
            self._bufs[name].upload(self._stream)
        if not self._context.execute_async_v3(int(self._stream)):
            raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        for buf in self._bufs.values():
            if not buf.is_input:
                buf.download(self._stream)

    def _capture_graph(self) -> None:
        """Capture the frame sequence after one normal run (TensorRT initialises lazily).

        cudaGraphInstantiateWithFlags(graph, flags) -> (err, exec) has the same signature in
        cuda-python 11.4+, 12.x and 13.x (plain cudaGraphInstantiate changed between 11 and 12)."""
        rt = self._cuda.rt
        self._cuda.sync(self._stream)
        graph = None
        try:
            self._cuda.call("cudaStreamBeginCapture", self._stream,
                            rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)
            try:
                self._enqueue_frame()
            finally:
                graph = self._cuda.call("cudaStreamEndCapture", self._stream)
            self._graph_exec = self._cuda.call("cudaGraphInstantiateWithFlags", graph, 0)
            self._graph = graph
        except CKDError as exc:
            self._log(f"CUDA graph capture failed ({exc}); running without a graph")
            self._recover_from_capture(graph)

    def _recover_from_capture(self, graph) -> None:
        """Destroy what the failed capture left, clear the sticky error, check one eager frame."""
        rt = self._cuda.rt
        status = rt.cudaStreamIsCapturing(self._stream)
        if len(status) > 1 and int(status[1]) != int(rt.cudaStreamCaptureStatus.cudaStreamCaptureStatusNone):
            out = rt.cudaStreamEndCapture(self._stream)
            if len(out) > 1 and out[1] is not None and graph is None:
                graph = out[1]
        if self._graph_exec is not None:
            rt.cudaGraphExecDestroy(self._graph_exec)
        if graph is not None:
            rt.cudaGraphDestroy(graph)
        self._graph = self._graph_exec = None
        self._use_graph = False
        self._cuda.clear_error()
        try:  # health check: the context must still run a frame eagerly
            self._enqueue_frame()
            self._cuda.sync(self._stream)
        except CKDError as exc:
            raise BackendError(f"TensorRT context unusable after a failed CUDA graph capture: {exc}") from exc
