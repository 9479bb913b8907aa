"""The few CUDA runtime calls the TensorRT runner needs, via cuda-python, with errors as BackendError.

cuda-python (11.x `cuda.cudart`, 12.x/13.x `cuda.bindings.runtime`) returns `(err, *values)` tuples
instead of raising; `call()` turns a failure into one readable exception. Pinned host buffers are
exposed as numpy arrays (zero-copy views) so filling an input is a plain np.copyto, and H2D/D2H
copies are truly asynchronous on the runner's stream.

Waiting for the stream never holds the GIL (issue 17.6): cuda-python < 12.9.1 keeps the GIL inside
cudaStreamSynchronize, freezing every other thread of the node for the whole inference, so `sync()`
polls cudaStreamQuery (returns at once) with short sleeps, which release the GIL, on every version.
"""
from __future__ import annotations

import ctypes
import time
from typing import Optional, Sequence

import numpy as np

from ckd_ros.errors import BackendError, DependencyError

#: first poll interval and cap of the GIL-free stream wait (seconds)
POLL_MIN_S = 20e-6
POLL_MAX_S = 500e-6


def import_cudart():
    """The cuda-python runtime module (cuda.bindings.runtime, cuda-python >= 12.6 and 13.x; cuda.cudart
    in 11.x/12.x), or None when cuda-python is missing or cannot load."""
    try:
        from cuda.bindings import runtime as cudart
        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python 11.x / 12.x < 12.6
        return cudart
    except ImportError:
        return None


def load_cudart(cudart=None):
    """`cudart` or the installed cuda-python runtime module; DependencyError when missing."""
    cudart = cudart if cudart is not None else import_cudart()
    if cudart is None:
        from ckd_ros.runtime.gpu import cuda_python_hint, probe_gpu

        raise DependencyError(f"cuda-python is not installed (needed by the TensorRT runner): "
                              f"{cuda_python_hint(probe_gpu())}")
    return cudart


class Cuda:
    """Thin wrapper over a cuda-python runtime module (injectable for tests)."""

    def __init__(self, cudart=None):
        self.rt = load_cudart(cudart)

    def call(self, fn_name: str, *args):
        out = getattr(self.rt, fn_name)(*args)
        err, values = out[0], out[1:]
        if int(err) != int(self.rt.cudaError_t.cudaSuccess):
            raise BackendError(f"CUDA {fn_name} failed: {getattr(err, 'name', err)}")
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def stream(self):
        return self.call("cudaStreamCreateWithFlags", self.rt.cudaStreamNonBlocking)

    def malloc(self, nbytes: int) -> int:
        return int(self.call("cudaMalloc", nbytes))

    def malloc_host(self, nbytes: int) -> int:
        return int(self.call("cudaMallocHost", nbytes))

    def h2d(self, dst: int, src: int, nbytes: int, stream) -> None:
        self.call("cudaMemcpyAsync", dst, src, nbytes, self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)

    def d2h(self, dst: int, src: int, nbytes: int, stream) -> None:
        self.call("cudaMemcpyAsync", dst, src, nbytes, self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)

    def sync(self, stream) -> None:
        """Wait for `stream` without holding the GIL: poll cudaStreamQuery, sleeping 20 us doubling to
        0.5 ms between polls (time.sleep releases the GIL; cudaStreamSynchronize may not)."""
        ok = int(self.rt.cudaError_t.cudaSuccess)
        not_ready = int(self.rt.cudaError_t.cudaErrorNotReady)
        delay = POLL_MIN_S
        while True:
            err = self.rt.cudaStreamQuery(stream)[0]
            if int(err) == ok:
                return
            if int(err) != not_ready:
                raise BackendError(f"CUDA stream failed: {getattr(err, 'name', err)}")
            time.sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)

    def clear_error(self) -> None:
        """Reset the runtime's sticky last error (after a failed capture)."""
        self.rt.cudaGetLastError()


class IOBuffer:
    """One engine I/O tensor: a pinned host array and a device buffer of the same size."""

    def __init__(self, cuda: Cuda, name: str, shape: Sequence[int], dtype, is_input: bool):
        self.cuda, self.name, self.is_input = cuda, name, is_input
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.host_ptr: Optional[int] = cuda.malloc_host(self.nbytes)
        self.device_ptr: Optional[int] = None
        try:
            self.device_ptr = cuda.malloc(self.nbytes)
        except BackendError:
            self.free()
            raise
        raw = (ctypes.c_byte * self.nbytes).from_address(self.host_ptr)
        self.host = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape)

    def upload(self, stream) -> None:
        self.cuda.h2d(self.device_ptr, self.host_ptr, self.nbytes, stream)

    def download(self, stream) -> None:
        self.cuda.d2h(self.host_ptr, self.device_ptr, self.nbytes, stream)

    def free(self) -> None:
        self.host = None  # drop the view before the memory goes
        if self.device_ptr is not None:
            self.cuda.rt.cudaFree(self.device_ptr)
            self.device_ptr = None
        if self.host_ptr is not None:
            self.cuda.rt.cudaFreeHost(self.host_ptr)
            self.host_ptr = None
