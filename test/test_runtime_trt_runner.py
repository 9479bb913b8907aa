"""TensorRT runner data path with a fake CUDA runtime and a fake engine (no GPU needed).

The fakes move real bytes: "device" buffers are host memory, memcpy is memmove, and the fake
engine computes its outputs from whatever its input addresses hold. So the tests check what the
runner must get right: address binding, which inputs are uploaded when (templates once per track),
outputs copied back, CUDA graph replay picking up new frames, errors for wrong engines, cleanup.
"""
from __future__ import annotations

import ctypes
import types

import numpy as np
import pytest

from ckd_ros.errors import CKDError
from ckd_ros.runtime.trt_runner import TensorRTBackend, expected_shapes, validate_io

CFG = types.SimpleNamespace(template_size=32, search_size=64, feat_size=4, name="tiny")


class FakeCudart:
    cudaError_t = types.SimpleNamespace(cudaSuccess=0)
    cudaStreamNonBlocking = 1
    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeThreadLocal=1)

    def __init__(self):
        self.device, self.pinned, self.copies, self.launches = {}, {}, [], 0
        self.capturing = None
        self.streams = set()

    def _alloc(self, table, n):
        buf = ctypes.create_string_buffer(n)
        table[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def cudaMalloc(self, n):
        return self._alloc(self.device, n)

    def cudaMallocHost(self, n):
        return self._alloc(self.pinned, n)

    def cudaFree(self, p):
        del self.device[p]
        return (0,)

    def cudaFreeHost(self, p):
        del self.pinned[p]
        return (0,)

    def enqueue(self, fn):
        if self.capturing is not None:
            self.capturing.append(fn)
        else:
            fn()

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        assert stream in self.streams
        self.copies.append((dst, kind))
        self.enqueue(lambda: ctypes.memmove(dst, src, n))
        return (0,)

    def cudaStreamCreateWithFlags(self, flags):
        assert flags == self.cudaStreamNonBlocking
        self.streams.add(7)
        return 0, 7

    def cudaStreamSynchronize(self, s):
        return (0,)

    def cudaStreamDestroy(self, s):
        self.streams.discard(s)
        return (0,)

    def cudaStreamBeginCapture(self, s, mode):
        self.capturing = []
        return (0,)

    def cudaStreamEndCapture(self, s):
        ops, self.capturing = self.capturing, None
        return 0, ops

    def cudaGraphInstantiate(self, graph, flags):
        return 0, list(graph)

    def cudaGraphLaunch(self, exec_, s):
        self.launches += 1
        for op in exec_:
            op()
        return (0,)

    def cudaGraphExecDestroy(self, g):
        return (0,)

    def cudaGraphDestroy(self, g):
        return (0,)


class FakeTrt:
    __name__ = "tensorrt"
    __version__ = "10.3.0"
    TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")

    @staticmethod
    def nptype(dtype):
        return dtype


def _view(ptr, shape, dtype=np.float32):
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_byte * n).from_address(ptr), dtype=dtype).reshape(shape)


def reference(z_rgb, z_tir, x_rgb, x_tir):
    """What the fake engine computes: depends on every input, differently per output."""
    f = CFG.feat_size
    base = x_rgb[:, :1, ::16, ::16] * 2 + x_tir[:, :1, ::16, ::16]
    return {"score_map": base + z_rgb.mean(),
            "size_map": np.concatenate([base, -base], 1) + z_tir.mean(),
            "offset_map": np.full((1, 2, f, f), z_rgb.sum() - x_tir.sum(), np.float32)}


class FakeContext:
    def __init__(self, engine):
        self.engine, self.addr = engine, {}

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr
        return True

    def execute_async_v3(self, stream):
        def run():
            io = self.engine.io
            ins = {n: _view(self.addr[n], io[n][0]).copy() for n in ("z_rgb", "z_tir", "x_rgb", "x_tir")}
            for name, value in reference(**ins).items():
                _view(self.addr[name], io[name][0])[...] = value
        self.engine.cudart.enqueue(run)
        return True


class FakeEngine:
    def __init__(self, cudart, io=None):
        self.cudart = cudart
        shapes = expected_shapes(CFG)
        self.io = io or {n: (s, np.dtype(np.float32), n[0] in "zx") for n, s in shapes.items()}
        self.names = list(self.io)

    num_io_tensors = property(lambda self: len(self.names))

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_shape(self, n):
        return self.io[n][0]

    def get_tensor_dtype(self, n):
        return self.io[n][1]

    def get_tensor_mode(self, n):
        return FakeTrt.TensorIOMode.INPUT if self.io[n][2] else FakeTrt.TensorIOMode.OUTPUT

    def create_execution_context(self):
        return FakeContext(self)


def inputs(seed):
    rng = np.random.default_rng(seed)
    t, s = CFG.template_size, CFG.search_size
    return [rng.standard_normal(shape).astype(np.float32) for shape in
            [(1, 3, t, t), (1, 3, t, t), (1, 3, s, s), (1, 3, s, s)]]


def make(cuda_graph=False, io=None):
    cudart = FakeCudart()
    backend = TensorRTBackend(FakeEngine(cudart, io), trt=FakeTrt, config=CFG, cuda_graph=cuda_graph,
                              cudart=cudart, log=lambda m: None)
    return backend, cudart


def check(maps, z_rgb, z_tir, x_rgb, x_tir):
    want = reference(z_rgb, z_tir, x_rgb, x_tir)
    for name in want:
        np.testing.assert_allclose(maps[name], want[name], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_template_once_then_frames(cuda_graph):
    backend, cudart = make(cuda_graph)
    z_rgb, z_tir, _, _ = inputs(0)
    backend.set_template(z_rgb, z_tir)
    h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
    after_template = len(cudart.copies)
    assert after_template == 2
    for seed in range(1, 5):  # new search crops every frame, template untouched
        _, _, x_rgb, x_tir = inputs(seed)
        maps = backend.infer_search(x_rgb, x_tir)
        check(maps, z_rgb, z_tir, x_rgb, x_tir)
        assert maps["score_map"].shape == (1, 1, 4, 4) and maps["score_map"].dtype == np.float32
    uploads = [d for d, kind in cudart.copies[after_template:] if kind == h2d]
    template_ptrs = {backend._bufs[n].device_ptr for n in ("z_rgb", "z_tir")}
    assert not template_ptrs & set(uploads), "template re-uploaded per frame"
    assert cudart.launches == (3 if cuda_graph else 0)  # frame 1 runs eagerly and is captured
    # returned maps are copies: the next frame must not overwrite them
    first = backend.infer_search(*inputs(9)[2:])
    snapshot = first["score_map"].copy()
    backend.infer_search(*inputs(10)[2:])
    np.testing.assert_array_equal(first["score_map"], snapshot)


def test_new_template_is_used_after_set_template():
    backend, _ = make(cuda_graph=True)
    a, b = inputs(0), inputs(1)
    backend.set_template(a[0], a[1])
    backend.infer_search(a[2], a[3])
    backend.set_template(b[0], b[1])
    check(backend.infer_search(a[2], a[3]), b[0], b[1], a[2], a[3])
    check(backend.infer(*a), *a)


def test_infer_search_needs_a_template_and_right_shapes():
    backend, _ = make()
    with pytest.raises(RuntimeError, match="set_template"):
        backend.infer_search(*inputs(0)[2:])
    z = inputs(0)
    backend.set_template(z[0], z[1])
    with pytest.raises(CKDError, match="x_rgb has shape"):
        backend.infer_search(np.zeros((1, 3, 8, 8), np.float32), z[3])


def test_close_frees_everything_and_is_idempotent():
    backend, cudart = make(cuda_graph=True)
    z = inputs(0)
    backend.infer(*z)
    assert cudart.device and cudart.pinned
    backend.close()
    backend.close()
    assert not cudart.device and not cudart.pinned and not cudart.streams
    with pytest.raises(CKDError, match="closed"):
        backend.infer(*z)


def test_graph_capture_failure_falls_back(monkeypatch):
    backend, cudart = make(cuda_graph=True)
    monkeypatch.setattr(cudart, "cudaGraphInstantiate", lambda g, f: (999, None), raising=False)
    z = inputs(0)
    check(backend.infer(*z), *z)
    assert not backend._use_graph and cudart.launches == 0
    z2 = inputs(1)
    check(backend.infer(*z2), *z2)


def _io(**changes):
    io = {n: (s, np.dtype(np.float32), n[0] in "zx") for n, s in expected_shapes(CFG).items()}
    io.update(changes)
    return io


def test_wrong_engines_are_rejected_with_clear_errors():
    with pytest.raises(CKDError, match="not the CKD inputs"):
        validate_io({**{k: v for k, v in _io().items() if k != "z_tir"},
                     "template": ((1, 3, 32, 32), np.float32, True)})
    with pytest.raises(CKDError, match="lacks outputs"):
        validate_io({k: v for k, v in _io().items() if k != "offset_map"})
    with pytest.raises(CKDError, match="dynamic shape"):
        validate_io(_io(x_rgb=((-1, 3, 64, 64), np.dtype(np.float32), True)))
    with pytest.raises(CKDError, match="float16, expected float32"):
        validate_io(_io(x_tir=((1, 3, 64, 64), np.dtype(np.float16), True)))
    with pytest.raises(CKDError, match="do not match the model config"):
        validate_io(_io(x_rgb=((1, 3, 96, 96), np.dtype(np.float32), True),
                        x_tir=((1, 3, 96, 96), np.dtype(np.float32), True)), CFG)
    # extra (debug) outputs are allowed and get buffers too
    extra = _io(kept_idx_0=((1, 5), np.dtype(np.int64), False))
    validate_io(extra, CFG)
    backend, _ = make(io=extra)
    assert "kept_idx_0" in backend._bufs and set(backend.infer(*inputs(0))) == {"score_map", "size_map",
                                                                                  "offset_map"}


def test_missing_cuda_python_is_a_clear_error(monkeypatch):
    from ckd_ros.runtime import cuda_mem

    monkeypatch.setattr(cuda_mem, "import_cudart", lambda: None)
    with pytest.raises(CKDError, match="cuda-python"):
        TensorRTBackend(FakeEngine(FakeCudart()), trt=FakeTrt, config=CFG, log=lambda m: None)
