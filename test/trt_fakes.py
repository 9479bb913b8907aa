"""Fakes of the TensorRT (8.5 / 8.6 / 10.x) and cuda-python (11.x / 12.x / 13.x) Python bindings.

Written from the bindings' documentation, per version, so production code that calls an API in a
way one supported version does not accept fails here too:

cuda-python (`cuda.cudart` 11.x, `cuda.bindings.runtime` 12.x/13.x): every call returns a tuple
`(cudaError_t, *outputs)`; errors are IntEnum members with `.name`.
- 11.x: `cudaGraphInstantiate(graph, pLogBuffer, bufferSize) -> (err, graphExec, errorNode)` (the
  CUDA 11 C signature); 12.x/13.x: `cudaGraphInstantiate(graph, flags) -> (err, graphExec)`.
  `cudaGraphInstantiateWithFlags(graph, flags) -> (err, graphExec)` in all three.
- `cudaStreamQuery(stream) -> (err,)` with cudaErrorNotReady (600) while work is pending;
  `cudaStreamIsCapturing(stream) -> (err, cudaStreamCaptureStatus)`; `cudaGetLastError() -> (err,)`.
- before 12.9.1, `cudaStreamSynchronize` holds the GIL while it waits: the fake waits in a C call
  made through ctypes.PyDLL, which keeps the GIL, exactly like that.
- 13.x needs a CUDA 13 driver (>= 580): on an older driver every call answers
  cudaErrorInsufficientDriver (35).

TensorRT: `Builder(logger)`, `create_network(flags)` (EXPLICIT_BATCH required on 8.x, deprecated and
ignored on 10), `OnnxParser(network, logger).parse_from_file(path)`, `IBuilderConfig` with
`set_flag/clear_flag/set_memory_pool_limit/create_timing_cache/set_timing_cache`, BuilderFlag FP16,
INT8, TF32, OBEY_PRECISION_CONSTRAINTS; `ILayer.precision`, `set_output_type`; LayerType
NORMALIZATION from 8.6; `IProgressMonitor` from 10 (absent in 8.5/8.6); `build_serialized_network`
returns IHostMemory (buffer protocol) or None; `Runtime(logger).deserialize_cuda_engine(bytes)`
returns an ICudaEngine or None; named-tensor I/O and `execute_async_v3(stream)`.
The parser reads the real ONNX file: 8.5 refuses LayerNormalization (its operator table says N).
Engines are JSON descriptions of the parsed I/O; the execution context computes fixed functions of
the inputs, moving real bytes between the fake host/device buffers.
"""
from __future__ import annotations

import ctypes
import enum
import json
import threading
import types

import numpy as np


# ---- cuda-python ----------------------------------------------------------------------------
class cudaError_t(enum.IntEnum):  # noqa: N801 (the binding's name)
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorInsufficientDriver = 35
    cudaErrorNotReady = 600
    cudaErrorStreamCaptureInvalidated = 901


class cudaStreamCaptureStatus(enum.IntEnum):  # noqa: N801
    cudaStreamCaptureStatusNone = 0
    cudaStreamCaptureStatusActive = 1
    cudaStreamCaptureStatusInvalidated = 2


_PYDLL = ctypes.PyDLL(None)  # C calls through PyDLL keep the GIL


class FakeCudart:
    """A cuda-python runtime module of `version` on a driver supporting CUDA `driver`.

    Device memory is host memory; queued work runs when the stream is synchronised or, with
    `pending_s`, the stream stays "not ready" that long after work is queued (an inference that
    takes time). `gate`: a threading.Event the stream waits for before it completes."""

    cudaError_t = cudaError_t
    cudaStreamCaptureStatus = cudaStreamCaptureStatus
    cudaStreamNonBlocking = 1
    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeThreadLocal=1)

    def __init__(self, version="12.6.0", driver="12.6", pending_s=0.0, gate=None):
        self.version, self.driver = version, driver
        self.major = int(version.split(".")[0])
        self.device, self.pinned, self.copies, self.launches = {}, {}, [], 0
        self.capturing = None
        self.capture_status = cudaStreamCaptureStatus.cudaStreamCaptureStatusNone
        self.streams, self.graphs, self.execs = set(), set(), set()
        self.queue = []
        self.pending_s, self.gate = pending_s, gate
        self.ready_at = 0.0
        self.sticky_error = cudaError_t.cudaSuccess
        self.calls = []
        self.query_started = threading.Event()
        self.fail_instantiate = False
        if self.major < 12:
            self.cudaGraphInstantiate = self._instantiate_11
        else:
            self.cudaGraphInstantiate = self._instantiate_12

    # driver compatibility: 13.x bindings on a 12.x driver fail every call
    def _ok(self):
        if self.major > int(self.driver.split(".")[0]):
            return cudaError_t.cudaErrorInsufficientDriver
        return cudaError_t.cudaSuccess

    def _log(self, name):
        self.calls.append(name)

    def cudaGetDeviceCount(self):
        err = self._ok()
        return (err, 1 if err == 0 else 0)

    def cudaDriverGetVersion(self):
        major, minor = self.driver.split(".")
        return (cudaError_t.cudaSuccess, int(major) * 1000 + int(minor) * 10)

    def _alloc(self, table, n):
        buf = ctypes.create_string_buffer(n)
        table[ctypes.addressof(buf)] = buf
        return self._ok(), ctypes.addressof(buf)

    def cudaMalloc(self, n):
        return self._alloc(self.device, n)

    def cudaMallocHost(self, n):
        return self._alloc(self.pinned, n)

    def cudaFree(self, p):
        del self.device[p]
        return (cudaError_t.cudaSuccess,)

    def cudaFreeHost(self, p):
        del self.pinned[p]
        return (cudaError_t.cudaSuccess,)

    def enqueue(self, fn):
        if self.capturing is not None:
            self.capturing.append(fn)
        else:
            self.queue.append(fn)
            import time

            self.ready_at = time.monotonic() + self.pending_s

    def _drain(self):
        while self.queue:
            self.queue.pop(0)()

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        assert stream in self.streams, "copy on an unknown stream"
        self.copies.append((dst, kind))
        self.enqueue(lambda: ctypes.memmove(dst, src, n))
        return (self._ok(),)

    def cudaStreamCreateWithFlags(self, flags):
        assert flags == self.cudaStreamNonBlocking
        self.streams.add(7)
        return self._ok(), 7

    def _done(self) -> bool:
        import time

        if self.gate is not None and not self.gate.is_set():
            return False
        return time.monotonic() >= self.ready_at

    def cudaStreamQuery(self, s):
        self._log("cudaStreamQuery")
        if self.queue:
            self.query_started.set()
        if self.queue and not self._done():
            return (cudaError_t.cudaErrorNotReady,)
        self._drain()
        return (cudaError_t.cudaSuccess,)

    def cudaStreamSynchronize(self, s):
        """Like cuda-python < 12.9.1: waits inside C with the GIL held."""
        import time

        self._log("cudaStreamSynchronize")
        if self.gate is not None:
            while not self.gate.is_set():
                _PYDLL.usleep(1000)
        remaining = self.ready_at - time.monotonic()
        if remaining > 0:
            _PYDLL.usleep(int(remaining * 1e6))
        self._drain()
        return (cudaError_t.cudaSuccess,)

    def cudaStreamDestroy(self, s):
        self.streams.discard(s)
        return (cudaError_t.cudaSuccess,)

    def cudaStreamBeginCapture(self, s, mode):
        self.capturing = []
        self.capture_status = cudaStreamCaptureStatus.cudaStreamCaptureStatusActive
        return (cudaError_t.cudaSuccess,)

    def cudaStreamEndCapture(self, s):
        if self.capturing is None:
            return (cudaError_t.cudaErrorInvalidValue, None)
        ops, self.capturing = self.capturing, None
        self.capture_status = cudaStreamCaptureStatus.cudaStreamCaptureStatusNone
        graph = ("graph", id(ops), ops)
        self.graphs.add(graph[:2])
        return cudaError_t.cudaSuccess, graph

    def cudaStreamIsCapturing(self, s):
        return cudaError_t.cudaSuccess, self.capture_status

    def _instantiate(self, graph):
        if self.fail_instantiate:
            self.sticky_error = cudaError_t.cudaErrorStreamCaptureInvalidated
            return cudaError_t.cudaErrorStreamCaptureInvalidated, None
        exec_ = ("exec", id(graph), graph[2])
        self.execs.add(exec_[:2])
        return cudaError_t.cudaSuccess, exec_

    def _instantiate_11(self, graph, pLogBuffer, bufferSize):  # noqa: N803
        err, exec_ = self._instantiate(graph)
        return err, exec_, None

    def _instantiate_12(self, graph, flags):
        return self._instantiate(graph)

    def cudaGraphInstantiateWithFlags(self, graph, flags):
        self._log("cudaGraphInstantiateWithFlags")
        return self._instantiate(graph)

    def cudaGraphLaunch(self, exec_, s):
        self.launches += 1
        for op in exec_[2]:
            self.enqueue(op)
        return (cudaError_t.cudaSuccess,)

    def cudaGraphExecDestroy(self, g):
        self.execs.discard(g[:2])
        return (cudaError_t.cudaSuccess,)

    def cudaGraphDestroy(self, g):
        self.graphs.discard(g[:2])
        return (cudaError_t.cudaSuccess,)

    def cudaGetLastError(self):
        err, self.sticky_error = self.sticky_error, cudaError_t.cudaSuccess
        return (err,)


CUDA_PYTHON_VERSIONS = ("11.8.0", "12.2.1", "13.0.1")


# ---- libcuda (driver API through ctypes) ------------------------------------------------------
class FakeLibcuda:
    """The five driver-API entry points gpu.probe_driver calls, with ctypes byref outputs."""

    def __init__(self, driver=12020, init_rc=0, count=1, name=b"Orin", cc=(8, 7), sms=16):
        self.driver, self.init_rc, self.count, self.name, self.cc, self.sms = driver, init_rc, count, name, cc, sms

    def cuDriverGetVersion(self, ref):
        ref._obj.value = self.driver
        return 0

    def cuInit(self, flags):
        assert flags == 0
        return self.init_rc

    def cuDeviceGetCount(self, ref):
        ref._obj.value = self.count
        return 0

    def cuDeviceGet(self, ref, ordinal):
        ref._obj.value = ordinal
        return 0

    def cuDeviceGetName(self, buf, n, dev):
        buf.value = self.name[:n - 1]
        return 0

    def cuDeviceGetAttribute(self, ref, attr, dev):
        ref._obj.value = {75: self.cc[0], 76: self.cc[1], 16: self.sms}[attr]
        return 0


# ---- TensorRT --------------------------------------------------------------------------------
class _Severity(int):
    @property
    def name(self):
        return {0: "INTERNAL_ERROR", 1: "ERROR", 2: "WARNING", 3: "INFO", 4: "VERBOSE"}[int(self)]


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    INT64 = 5


class _Layer:
    def __init__(self, name, type_, out_dtypes):
        self.name, self.type = name, type_
        self.outputs = [types.SimpleNamespace(dtype=d) for d in out_dtypes]
        self.precision = None
        self.output_types = {}
        self.num_outputs = len(out_dtypes)

    def get_output(self, i):
        return self.outputs[i]

    def set_output_type(self, i, dtype):
        self.output_types[i] = dtype


_INT_OPS = {"Shape", "ConstantOfShape", "Equal", "TopK_idx", "NonZero"}
_OP_LAYER = {"LayerNormalization": "NORMALIZATION", "QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE",
             "ReduceMean": "REDUCE", "MatMul": "MATRIX_MULTIPLY", "Softmax": "SOFTMAX", "Conv": "CONVOLUTION"}


def make_tensorrt(version="10.3.0", name="tensorrt"):
    """A fake `tensorrt` module of `version` (8.5.x, 8.6.x or 10.x)."""
    major, minor = (int(p) for p in version.split(".")[:2])
    state = types.SimpleNamespace(flags=set(), cleared=set(), pool={}, timing_in=None, network_flags=None,
                                  builds=0, loggers=[], runtime_error=None, builder_error=None,
                                  build_seconds=0.0, refs={}, pinned=None)

    class ILogger:
        def __init__(self):
            pass

    class Logger(ILogger):
        Severity = types.SimpleNamespace(INTERNAL_ERROR=_Severity(0), ERROR=_Severity(1), WARNING=_Severity(2),
                                         INFO=_Severity(3), VERBOSE=_Severity(4))
        ERROR = Severity.ERROR

        def __init__(self, severity=None):
            pass

        def log(self, severity, msg):
            pass

    def _first_logger(logger):
        """TensorRT keeps the first logger for the process and ignores later ones (with a warning)."""
        if state.loggers and logger is not state.loggers[0]:
            state.loggers[0].log(Logger.Severity.WARNING, "The logger passed into createInferRuntime differs "
                                 "from one already provided for an existing builder, runtime, or refitter.")
        state.loggers.append(logger)
        return state.loggers[0]

    layer_types = ["QUANTIZE", "DEQUANTIZE", "REDUCE", "MATRIX_MULTIPLY", "SOFTMAX", "CONVOLUTION", "ELEMENTWISE",
                   "SHUFFLE", "CONSTANT", "SHAPE", "OTHER"]
    if (major, minor) >= (8, 6):
        layer_types.append("NORMALIZATION")
    LayerType = types.SimpleNamespace(**{t: t for t in layer_types})
    unsupported = {"LayerNormalization"} if (major, minor) < (8, 6) else set()

    class Network:
        def __init__(self):
            self.layers, self.inputs, self.outputs = [], [], []

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse_from_file(self, path):
            import onnx

            proto = onnx.load(str(path))
            for node in proto.graph.node:
                if node.op_type in unsupported:
                    self.errors.append(f"In node {node.name}: No importer registered for op: {node.op_type}")
                    continue
                kind = _OP_LAYER.get(node.op_type, "ELEMENTWISE")
                if node.op_type == "LayerNormalization" and not hasattr(LayerType, "NORMALIZATION"):
                    kind = "OTHER"
                dtype = DataType.INT32 if node.op_type in _INT_OPS else DataType.FLOAT
                self.network.layers.append(_Layer(node.name, getattr(LayerType, kind), [dtype] * len(node.output)))
            dims = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
                    for v in list(proto.graph.input) + list(proto.graph.output)}
            self.network.inputs = [(v.name, dims[v.name]) for v in proto.graph.input]
            self.network.outputs = [(v.name, dims[v.name]) for v in proto.graph.output]
            return not self.errors

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return memoryview(self.data + b"+t")

    class Config:
        def set_memory_pool_limit(self, pool, n):
            state.pool[pool] = n

        def set_flag(self, f):
            state.flags.add(f)

        def clear_flag(self, f):
            state.cleared.add(f)

        def create_timing_cache(self, data):
            state.timing_in = bytes(data)
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            return True

    class Builder:
        def __init__(self, logger):
            self.logger = _first_logger(logger)
            if state.builder_error:
                self.logger.log(Logger.Severity.ERROR, state.builder_error)

        def create_network(self, flags):
            state.network_flags = flags
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            import time
            import weakref

            state.builds += 1
            state.refs = {"builder": weakref.ref(self), "network": weakref.ref(network),
                          "config": weakref.ref(config)}
            state.pinned = [(layer.name, layer.precision, dict(layer.output_types)) for layer in network.layers
                            if layer.precision is not None]
            monitor = getattr(config, "progress_monitor", None)
            if monitor is not None:
                monitor.phase_start("Building engine", None, 3)
                for i in range(3):
                    monitor.step_complete("Building engine", i)
                monitor.phase_finish("Building engine")
            time.sleep(state.build_seconds)
            self.logger.log(Logger.Severity.WARNING, "some layer fell back")
            plan = json.dumps({"inputs": network.inputs, "outputs": network.outputs, "version": version}).encode()
            return memoryview(bytearray(b"PLAN" + plan))

    class Runtime:
        def __init__(self, logger):
            self.logger = _first_logger(logger)
            if state.runtime_error:
                self.logger.log(Logger.Severity.ERROR, state.runtime_error)

        def deserialize_cuda_engine(self, data):
            data = bytes(data)
            if not data.startswith(b"PLAN"):
                self.logger.log(Logger.Severity.ERROR, "Serialization assertion failed: magic tag")
                return None
            desc = json.loads(data[4:])
            if desc["version"] != version:
                self.logger.log(Logger.Severity.ERROR, "The engine plan file is not compatible with this version")
                return None
            return FakeEngine(desc)

    class FakeEngine:
        def __init__(self, desc):
            self.io = [(n, tuple(s), True) for n, s in desc["inputs"]] + \
                      [(n, tuple(s), False) for n, s in desc["outputs"]]
            self.cudart = None

        num_io_tensors = property(lambda self: len(self.io))

        def get_tensor_name(self, i):
            return self.io[i][0]

        def _find(self, n):
            return next(t for t in self.io if t[0] == n)

        def get_tensor_shape(self, n):
            return self._find(n)[1]

        def get_tensor_dtype(self, n):
            return DataType.FLOAT

        def get_tensor_mode(self, n):
            return TensorIOMode.INPUT if self._find(n)[2] else TensorIOMode.OUTPUT

        def create_execution_context(self):
            return FakeContext(self)

    class FakeContext:
        def __init__(self, engine):
            self.engine, self.addr = engine, {}
            self.executions = 0

        def set_tensor_address(self, name, ptr):
            self.addr[name] = ptr
            return True

        def execute_async_v3(self, stream):
            def run():
                ins = {n: view(self.addr[n], s).copy() for n, s, is_in in self.engine.io if is_in}
                for n, s, is_in in self.engine.io:
                    if not is_in:
                        view(self.addr[n], s)[...] = fake_network(ins, n, s)
            self.executions += 1
            CURRENT_CUDART[0].enqueue(run)
            return True

    TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    flags = ["FP16", "INT8", "TF32", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"]
    mod = types.SimpleNamespace(
        __name__=name, __version__=version, ILogger=ILogger, Logger=Logger, Builder=Builder, Runtime=Runtime,
        OnnxParser=OnnxParser, MemoryPoolType=types.SimpleNamespace(WORKSPACE="ws"),
        BuilderFlag=types.SimpleNamespace(**{f: f for f in flags}),
        NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0), LayerType=LayerType,
        TensorIOMode=TensorIOMode, float32=DataType.FLOAT, float16=DataType.HALF, int32=DataType.INT32,
        nptype=lambda dt: np.float32 if dt == DataType.FLOAT else np.int32, state=state)
    if major >= 10:  # IProgressMonitor: TensorRT >= 9.0 (10.x here)
        class IProgressMonitor:
            def __init__(self):
                pass

        mod.IProgressMonitor = IProgressMonitor
    return mod


TRT_VERSIONS = ("8.5.2.2", "8.6.2.3", "10.3.0")
CURRENT_CUDART = [None]  # the fake CUDA the fake TensorRT enqueues on (set by tests)


def view(ptr, shape, dtype=np.float32):
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_byte * n).from_address(ptr), dtype=dtype).reshape(shape)


def fake_network(ins, name, shape):
    """What the fake engine computes for output `name`: depends on every input."""
    if len(shape) != 4:  # debug outputs (kept indices)
        return np.zeros(shape, np.float32)
    z = float(ins["z_rgb"].mean() + 2 * ins["z_tir"].mean())
    x = ins["x_rgb"][:, :1] * 2 + ins["x_tir"][:, :1]
    f = shape[-1]
    step = x.shape[-1] // f
    base = x[:, :, ::step, ::step][:, :, :f, :f]
    out = np.zeros(shape, np.float32)
    for c in range(shape[1]):
        out[:, c] = base[:, 0] * (c + 1) + z
    return out


def reference(z_rgb, z_tir, x_rgb, x_tir, shapes):
    ins = dict(z_rgb=z_rgb, z_tir=z_tir, x_rgb=x_rgb, x_tir=x_tir)
    return {n: fake_network(ins, n, shapes[n]) for n in ("score_map", "size_map", "offset_map")}


def install_fake_gpu_stack(monkeypatch, trt_version="10.3.0", cuda_version="12.6.0", driver="12.6"):
    """Make this process look like a GPU machine with TensorRT `trt_version` and cuda-python
    `cuda_version` on a CUDA `driver` driver: (trt module, FakeCudart, GpuInfo)."""
    import importlib.machinery
    import sys

    from ckd_ros.runtime import cuda_mem
    from ckd_ros.runtime import gpu as gpu_mod

    fake = make_tensorrt(trt_version)
    module = types.ModuleType("tensorrt")
    module.__dict__.update(vars(fake))
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    cudart = FakeCudart(cuda_version, driver=driver)
    CURRENT_CUDART[0] = cudart
    gpu = gpu_mod.GpuInfo(True, "CUDA driver sees 1 device(s)", name="Orin", compute_capability=(8, 7),
                          driver_version=driver, device_count=1, source="driver", sm_count=16,
                          l4t_release="R36.4.0", jetson_model="NVIDIA Jetson AGX Orin Developer Kit")
    monkeypatch.setattr(gpu_mod, "probe_gpu", lambda: gpu)
    monkeypatch.setattr(gpu_mod, "cuda_python_version", lambda: cuda_version)
    monkeypatch.setattr(gpu_mod, "installed_tensorrt_cuda_major", lambda: None)
    monkeypatch.setattr(cuda_mem, "import_cudart", lambda: cudart)
    monkeypatch.delenv("CKD_TRT_MODULE", raising=False)
    return module, cudart, gpu
