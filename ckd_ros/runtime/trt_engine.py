"""TensorRTEngine: the one owner of a TensorRT engine (issue 15.4, like Autoware's TrtCommon).

It checks the requirements (GPU through the driver, TensorRT, cuda-python matching the driver),
picks the export mode the TensorRT version's parser needs (`trt85` below 8.6: LayerNorm decomposed),
derives the cache key (ONNX sha256, TensorRT, device identity, precision, workspace), builds into
the cache (straight to the file), validates and loads the engine, rebuilds a cached engine that
fails to deserialise, and opens the runner. open_backend() only chooses a backend and calls
`TensorRTEngine(...).open_backend()`; `ckd build-engine` calls `.ensure()`.
"""
from __future__ import annotations

import pathlib
from typing import Optional, Tuple

from ckd_ros.errors import CheckpointError, DependencyError
from ckd_ros.hashing import file_sha256
from ckd_ros.runtime.cache import ArtifactCache, as_log
from ckd_ros.runtime.options import check_precision


def has_fused_layernorm(onnx_path) -> bool:
    """True when the file holds LayerNormalization (export mode `standard`), which TensorRT 8.5
    cannot parse. Read from the `ckd export` sidecar/metadata; without them from the graph (needs
    the onnx package); where neither is possible False, and TensorRT's parser says it instead."""
    from ckd_ros.model.onnx_meta import mode_of, read_metadata

    try:
        return not mode_of(read_metadata(onnx_path)).fp32_norm_layers
    except (CheckpointError, ImportError):
        pass
    try:
        import onnx
    except ImportError:
        return False
    proto = onnx.load(str(onnx_path), load_external_data=False)
    return any(n.op_type == "LayerNormalization" for n in proto.graph.node)


def require_tensorrt(gpu=None, trt_module: Optional[str] = None, cudart=None):
    """The GpuInfo when the TensorRT backend can run here; DependencyError naming everything missing
    (GPU, TensorRT bindings matching the driver, cuda-python matching the driver) otherwise."""
    from ckd_ros.runtime.gpu import probe_gpu, tensorrt_problems

    gpu = gpu if gpu is not None else probe_gpu()  # before anything touches TensorRT
    problems = tensorrt_problems(gpu, trt_module or "tensorrt", cudart=cudart)
    if problems:
        raise DependencyError("TensorRT backend unusable here: " + "; ".join(problems))
    return gpu


class TensorRTEngine:
    """One ONNX model's TensorRT engine on this machine.

    onnx_path: a `ckd export` file (or None with `checkpoint`: exported into the cache in the mode
    this TensorRT needs); precision: fp32/fp16/int8; gpu: a GpuInfo (default: probe_gpu());
    require_gpu=False only for ahead-of-time builds without a GPU (TensorRT-RTX parser check).
    Raises DependencyError (naming what is missing and the install line) before anything touches
    TensorRT when the machine cannot run it.
    """

    def __init__(self, onnx_path=None, cache: Optional[ArtifactCache] = None, *, checkpoint=None, config=None,
                 precision: str = "fp32", workspace_mb: int = 2048, trt_module: Optional[str] = None,
                 gpu=None, log=None, require_gpu: bool = True, cudart=None):
        from ckd_ros.runtime.gpu import probe_gpu
        from ckd_ros.runtime.trt_common import import_tensorrt

        if onnx_path is None and checkpoint is None:
            raise CheckpointError("TensorRTEngine needs an ONNX file or a checkpoint")
        self.log = as_log(log)
        self.cache = cache if cache is not None else ArtifactCache(None)
        self.precision = check_precision(precision)
        self.workspace_mb = int(workspace_mb)
        self.config = config
        self.gpu = require_tensorrt(gpu, trt_module, cudart) if require_gpu else (gpu or probe_gpu())
        self.trt = import_tensorrt(trt_module)
        from ckd_ros.model.onnx_meta import export_mode_for_trt
        from ckd_ros.runtime.trt_common import process_logger

        process_logger(self.trt, self.log)  # TensorRT messages outside a build (inference) go here

        self.mode = export_mode_for_trt(self.trt.__version__)
        self.onnx_path = self._onnx_for_this_parser(onnx_path, checkpoint)
        self._key = None

    # -- which ONNX file this TensorRT can parse --------------------------------------------
    def _onnx_for_this_parser(self, onnx_path, checkpoint) -> pathlib.Path:
        if onnx_path is None:
            from ckd_ros.runtime.onnx_cache import ensure_onnx

            path, _ = ensure_onnx(self.cache, checkpoint=checkpoint, config=self.config, mode=self.mode.name,
                                  log=self.log)
            return pathlib.Path(path)
        onnx_path = pathlib.Path(onnx_path)
        if self.mode.name == "trt85" and has_fused_layernorm(onnx_path):
            if checkpoint is not None:
                from ckd_ros.runtime.onnx_cache import ensure_onnx

                self.log(f"TensorRT {self.trt.__version__} cannot parse LayerNormalization; re-exporting in "
                         "mode trt85")
                path, _ = ensure_onnx(self.cache, checkpoint=checkpoint, config=self.config, mode="trt85",
                                      log=self.log)
                return pathlib.Path(path)
            raise CheckpointError(f"TensorRT {self.trt.__version__} (JetPack 5) cannot parse {onnx_path.name} "
                                  "(LayerNormalization, opset 17): re-export it with `ckd export --mode trt85`")
        return onnx_path

    # -- cache key, build, load ---------------------------------------------------------------
    @property
    def key(self):
        """EngineKey of this (ONNX file, TensorRT, device, precision, workspace)."""
        if self._key is None:
            from ckd_ros.runtime.engine_cache import make_engine_key

            self._key = make_engine_key(file_sha256(self.onnx_path), trt_module=self.trt.__name__,
                                        trt_version=self.trt.__version__, gpu=self.gpu,
                                        precision=self.precision, workspace_mb=self.workspace_mb)
        return self._key

    def _build(self, onnx_file, timing_cache, out_path) -> None:
        from ckd_ros.runtime.trt_build import build_engine

        build_engine(onnx_file, out_path, precision=self.precision, workspace_mb=self.workspace_mb,
                     timing_cache_path=timing_cache, log=self.log, trt=self.trt)

    def ensure(self) -> Tuple[pathlib.Path, str]:
        """Build (or find) the engine without loading it: (path, action)."""
        from ckd_ros.runtime.engine_cache import ensure_engine

        return ensure_engine(self.onnx_path, self.key, self._build, self.cache, log=self.log)

    def load(self):
        """(runtime, engine, path, action): deserialised engine; a cached engine TensorRT refuses is
        rebuilt once."""
        from ckd_ros.runtime.engine_cache import load_engine
        from ckd_ros.runtime.trt_common import create_runtime, process_logger

        runtime = create_runtime(self.trt, self.log)
        with process_logger(self.trt).capture(self.log):
            engine, path, action = load_engine(self.onnx_path, self.key, self._build, runtime.deserialize_cuda_engine,
                                               self.cache, log=self.log)
        return runtime, engine, path, action

    def open_backend(self, *, cuda_graph: bool = False, reason: str = "", cudart=None):
        """The runner (TensorRTBackend) on the loaded engine; its I/O is validated against the config."""
        from ckd_ros.runtime.trt_runner import TensorRTBackend

        if self.config is None:
            from ckd_ros.model.config_source import resolve_config

            self.config = resolve_config(onnx=self.onnx_path)
        runtime, engine, path, action = self.load()
        if action != "cached":
            reason = f"{reason}; engine {action}"
        return TensorRTBackend(engine, trt=self.trt, runtime=runtime, config=self.config, precision=self.precision,
                               cuda_graph=cuda_graph, engine_path=path, log=self.log, reason=reason, cudart=cudart)
