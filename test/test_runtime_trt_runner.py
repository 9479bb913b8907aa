"""TensorRT runner data path with a fake CUDA runtime and a fake engine (no GPU needed).

The fakes move real bytes: "device" buffers are host memory, memcpy is memmove, and the fake
engine computes its outputs from whatever its input addresses hold. So the tests check what the
runner must get right: address binding, which inputs are uploaded when (templates once per track),
outputs copied back, CUDA graph replay picking up new frames, errors for wrong engines, cleanup.
"""
from __future__ import annotations

import json
import threading
import time
import types

import numpy as np
import pytest
from trt_fakes import CUDA_PYTHON_VERSIONS, CURRENT_CUDART, FakeCudart, make_tensorrt, reference

from ckd_ros.errors import BackendError, CKDError
from ckd_ros.model.io_spec import io_shapes
from ckd_ros.runtime.trt_runner import TensorRTBackend, validate_io

CFG = types.SimpleNamespace(template_size=32, search_size=64, feat_size=4, name="tiny")


def make_engine(trt, io=None):
    """A fake ICudaEngine with the CKD I/O of CFG (or `io`: name -> (shape, is_input))."""
    shapes = io_shapes(CFG)
    io = io or {n: (s, n[0] in "zx") for n, s in shapes.items()}
    desc = {"inputs": [(n, s) for n, (s, i) in io.items() if i],
            "outputs": [(n, s) for n, (s, i) in io.items() if not i], "version": trt.__version__}
    return trt.Runtime(trt.Logger()).deserialize_cuda_engine(b"PLAN" + json.dumps(desc).encode())


def inputs(seed):
    rng = np.random.default_rng(seed)
    t, s = CFG.template_size, CFG.search_size
    return [rng.standard_normal(shape).astype(np.float32) for shape in
            [(1, 3, t, t), (1, 3, t, t), (1, 3, s, s), (1, 3, s, s)]]


def make(cuda_graph=False, io=None, cuda_version="12.6.0", trt_version="10.3.0", **cuda_kw):
    cuda_kw.setdefault("driver", "13.0" if cuda_version.startswith("13") else "12.6")
    cudart = FakeCudart(cuda_version, **cuda_kw)
    CURRENT_CUDART[0] = cudart
    trt = make_tensorrt(trt_version)
    backend = TensorRTBackend(make_engine(trt, io), trt=trt, config=CFG, cuda_graph=cuda_graph,
                              cudart=cudart, log=lambda m: None)
    return backend, cudart


def check(maps, z_rgb, z_tir, x_rgb, x_tir):
    want = reference(z_rgb, z_tir, x_rgb, x_tir, io_shapes(CFG))
    for name in want:
        np.testing.assert_allclose(maps[name], want[name], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("cuda_version", CUDA_PYTHON_VERSIONS)
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_template_once_then_frames(cuda_graph, cuda_version):
    """Every supported cuda-python: 11.x has the old cudaGraphInstantiate signature, so production
    must use cudaGraphInstantiateWithFlags (the fake 11.x refuses a (graph, flags) call)."""
    backend, cudart = make(cuda_graph, cuda_version=cuda_version)
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
    assert ("cudaGraphInstantiateWithFlags" in cudart.calls) == cuda_graph
    assert "cudaStreamSynchronize" not in cudart.calls  # waits poll cudaStreamQuery (GIL-free)
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


@pytest.mark.parametrize("cuda_version", CUDA_PYTHON_VERSIONS)
def test_failed_graph_capture_is_cleaned_up_and_health_checked(cuda_version):
    backend, cudart = make(cuda_graph=True, cuda_version=cuda_version)
    cudart.fail_instantiate = True
    z = inputs(0)
    check(backend.infer(*z), *z)
    assert not backend._use_graph and cudart.launches == 0
    assert not cudart.graphs and not cudart.execs  # the captured graph was destroyed
    assert cudart.sticky_error == 0  # the pending error was cleared
    # eager frame + health-check frame after the failed capture
    ctx = backend._context
    assert ctx.executions == 3  # frame, captured enqueue, health check
    z2 = inputs(1)
    check(backend.infer(*z2), *z2)


def test_unusable_context_after_failed_capture_is_an_error():
    backend, cudart = make(cuda_graph=True)
    cudart.fail_instantiate = True
    backend._context.execute_async_v3 = lambda stream, _n=[0]: _n.append(1) or len(_n) < 4
    with pytest.raises(BackendError, match="unusable after a failed CUDA graph capture"):
        backend.infer(*inputs(0))


def test_stream_wait_does_not_hold_the_gil():
    """cuda-python < 12.9.1 holds the GIL in cudaStreamSynchronize (the fake does the same): a 1 ms
    ticker thread must keep running while an inference of ~0.3 s is awaited."""
    backend, cudart = make(cuda_version="12.2.1", pending_s=0.3)
    z = inputs(0)
    backend.set_template(z[0], z[1])
    ticks, stop = [], threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    time.sleep(0.01)
    t0 = time.monotonic()
    check(backend.infer_search(z[2], z[3]), *z)
    t1 = time.monotonic()
    stop.set()
    t.join()
    during = [t0] + [x for x in ticks if t0 <= x <= t1] + [t1]
    longest_gap = max(b - a for a, b in zip(during, during[1:]))
    assert t1 - t0 >= 0.3 and longest_gap < 0.15, longest_gap  # a GIL-holding wait: one 0.3 s gap
    assert "cudaStreamSynchronize" not in cudart.calls


def test_close_waits_for_the_running_inference():
    gate = threading.Event()
    gate.set()
    backend, cudart = make(gate=gate)
    z = inputs(0)
    backend.set_template(z[0], z[1])
    gate.clear()
    result = {}
    worker = threading.Thread(target=lambda: result.update(maps=backend.infer_search(z[2], z[3])))
    worker.start()
    assert cudart.query_started.wait(5)
    closer = threading.Thread(target=backend.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and cudart.device and cudart.pinned  # nothing freed under the frame
    gate.set()
    worker.join(5)
    closer.join(5)
    check(result["maps"], *z)
    assert not cudart.device and not cudart.pinned and not cudart.streams


def _io(**changes):
    io = {n: (s, np.dtype(np.float32), n[0] in "zx") for n, s in io_shapes(CFG).items()}
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
    backend, _ = make(io={n: (s, i) for n, (s, _, i) in extra.items()})
    assert "kept_idx_0" in backend._bufs and set(backend.infer(*inputs(0))) == {"score_map", "size_map",
                                                                                  "offset_map"}


def test_missing_cuda_python_is_a_clear_error(monkeypatch):
    from ckd_ros.runtime import cuda_mem

    monkeypatch.setattr(cuda_mem, "import_cudart", lambda: None)
    trt = make_tensorrt()
    with pytest.raises(CKDError, match="cuda-python"):
        TensorRTBackend(make_engine(trt), trt=trt, config=CFG, log=lambda m: None)
