"""Where a TensorRT engine for (ONNX file, machine, build options) lives, and when to rebuild it.

An engine only runs on the GPU model, TensorRT version and platform it was built on. The key holds
everything that matters; the file name (the "slot") holds only what may legitimately coexist on one
machine (model, precision, GPU), so a TensorRT/CUDA/JetPack upgrade replaces the old engine in place
and the log says which field changed instead of leaving stale engines behind.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Callable, Dict, Optional, Tuple

from ckd_ros.errors import CKDError
from ckd_ros.hashing import file_sha256
from ckd_ros.runtime.cache import ArtifactCache, as_log, read_sidecar
from ckd_ros.runtime.gpu import GpuInfo, device_identity

# bump when build options change in a way the other key fields do not capture
# 2: device identity from the driver (SM count, Jetson model), no cuda-python version; FP32 norms
BUILD_RECIPE = 2


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """Everything that makes a built engine foreign. The device part is gpu.device_identity():
    the same on every probe path and independent of binding versions (issue 17.7)."""
    onnx_sha256: str
    trt_module: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    sm_count: str
    jetson_model: str
    cuda_driver: str
    l4t_release: str
    precision: str
    workspace_mb: int
    recipe: int = BUILD_RECIPE

    def as_dict(self) -> Dict:
        return dataclasses.asdict(self)

    def gpu_slug(self) -> str:
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", self.gpu_name).strip("-").lower() or "gpu"
        if self.compute_capability in ("none", "unknown"):  # ahead-of-time build without a GPU (TensorRT-RTX)
            return gpu
        return f"{gpu}-sm{self.compute_capability.replace('.', '')}"

    def slot_name(self, stem: str = "ckd") -> str:
        return f"{stem}-{self.onnx_sha256[:12]}-{self.precision}-{self.gpu_slug()}-{self.trt_module}.engine"


def make_engine_key(onnx_sha256: str, *, trt_module: str, trt_version: str, gpu: GpuInfo,
                    precision: str, workspace_mb: int) -> EngineKey:
    return EngineKey(onnx_sha256=onnx_sha256, trt_module=trt_module, trt_version=str(trt_version),
                     precision=precision, workspace_mb=int(workspace_mb), **device_identity(gpu))


def engine_dir(cache: ArtifactCache) -> pathlib.Path:
    return cache.path("engines")


def timing_cache_path(cache: ArtifactCache, key: EngineKey) -> pathlib.Path:
    """One timing cache per TensorRT version and GPU, shared by all models (it holds kernel timings)."""
    return engine_dir(cache) / f"timing-{key.trt_module}-{key.trt_version}-{key.gpu_slug()}.cache"


# (onnx path, timing cache path, output path) -> None, writing the engine to the output path
# (a builder may instead return the engine bytes; they are written for it)
BuildFn = Callable[[pathlib.Path, pathlib.Path, pathlib.Path], Optional[bytes]]


def ensure_engine(onnx_path, key: EngineKey, build: BuildFn, cache: ArtifactCache, *, log=None,
                  reject: Optional[Tuple[str, str]] = None, stem: str = "ckd") -> Tuple[pathlib.Path, str]:
    """Return (engine path, action); builds when missing, stale, foreign or corrupt."""
    path = engine_dir(cache) / key.slot_name(stem)
    tc = timing_cache_path(cache, key)

    def produce(tmp: pathlib.Path) -> None:
        data = build(pathlib.Path(onnx_path), tc, tmp)
        if data is not None:
            tmp.write_bytes(data)

    return cache.ensure(path, key.as_dict(), produce, what="TensorRT engine", log=log, reject=reject,
                        extra={"onnx": str(onnx_path)})


def load_engine(onnx_path, key: EngineKey, build: BuildFn, deserialize: Callable[[bytes], object],
                cache: ArtifactCache, *, log=None, stem: str = "ckd"):
    """(engine, path, action): ensure + deserialise; a cached engine that fails to deserialise is
    rebuilt once (TensorRT returns None for plans from another version/GPU)."""
    log = as_log(log)
    path, action = ensure_engine(onnx_path, key, build, cache, log=log, stem=stem)
    engine = deserialize(path.read_bytes())  # the bytes go as soon as TensorRT has the engine
    if engine is not None:
        return engine, path, action
    if action != "cached":
        raise CKDError(f"TensorRT could not deserialise the engine it just built: {path}")
    bad = read_sidecar(path).get("sha256") or file_sha256(path)
    log(f"cached engine {path.name} failed to deserialise; rebuilding")
    path, action = ensure_engine(onnx_path, key, build, cache, log=log, stem=stem,
                                 reject=(bad, "cached engine failed to deserialise"))
    engine = deserialize(path.read_bytes())
    if engine is None:
        raise CKDError(f"TensorRT could not deserialise the rebuilt engine {path}")
    return engine, path, action
