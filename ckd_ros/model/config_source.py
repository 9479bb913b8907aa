"""Which model configuration wins: the one rule used by open_backend, load_checkpoint and the node.

Sources (issue 15.3), strongest first:
1. the model file's own record: an ONNX file's `ckd_ros` metadata (sidecar or embedded) or the
   config a converted/training checkpoint carries. Its graph/weights are fixed, so it wins; an
   explicit preset/config that differs is reported as ignored (log line), not silently dropped.
2. an explicit `config` (CKDConfig, or a dict of its fields);
3. an explicit `preset` name (ckd_ros.model.config.PRESETS);
4. nothing: None, and load_checkpoint infers the size from the weights (official files).
Torch-free unless a checkpoint's embedded config has to be read.
"""
from __future__ import annotations

from typing import Callable, Optional

from ckd_ros.errors import CheckpointError, ParameterError
from ckd_ros.model.config import CKDConfig

_UNSET = object()


def resolve_config(*, config=None, preset: Optional[str] = None, onnx=None, checkpoint=None,
                   stored=_UNSET, log: Optional[Callable[[str], None]] = None) -> Optional[CKDConfig]:
    """The CKDConfig for a model file (see the module docstring for the order).

    config: CKDConfig or dict; preset: a preset name; onnx / checkpoint: the model file; stored: the
    checkpoint's embedded config when the caller has read it already (None: it has none).
    Raises ParameterError for both config and preset, CheckpointError for an ONNX file without
    metadata and no explicit config.
    """
    if config is not None and preset is not None:
        raise ParameterError("give either a config or a preset, not both")
    explicit = None
    if config is not None:
        explicit = config if isinstance(config, CKDConfig) else CKDConfig.from_dict(dict(config))
    elif preset is not None:
        explicit = CKDConfig.preset(preset)
    source, own = None, None
    if onnx is not None:
        from ckd_ros.model.onnx_meta import read_metadata

        source = onnx
        try:
            own = CKDConfig.from_dict(read_metadata(onnx)["config"])
        except CheckpointError:
            if explicit is None:
                raise
    elif checkpoint is not None:
        source = checkpoint
        if stored is _UNSET:
            from ckd_ros.model.checkpoint import load_config_for

            stored = load_config_for(checkpoint)
        own = stored
    if own is None:
        return explicit
    if explicit is not None and explicit != own and log is not None:
        log(f"{source} holds a '{own.name}' model; the given {'config' if config is not None else 'preset'} "
            f"'{explicit.name}' is ignored")
    return own
