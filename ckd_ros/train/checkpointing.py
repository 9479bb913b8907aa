"""Training checkpoints: the official container layout plus what resuming needs, written atomically.

`{'net': state_dict (878 keys), 'epoch': int, 'net_type': 'OSTrack_CKD', ...}` is what the authors'
tools and `ckd_ros.model.load_checkpoint` read; we add the optimizer, AMP scaler, RNG states, the step
counter and both configs. Only tensors and plain Python values are stored (no pickled classes), so
resuming loads with `torch.load(weights_only=True)`.

A run stopped by SIGINT/SIGTERM in the middle of epoch E writes `CKD_epEEEE.partial.pth.tar`: the
same container with `epoch` = E-1 (finished epochs) and `epoch_steps` = the iterations of epoch E
already done; resuming skips those iterations (samples are a pure function of seed, rank, epoch and
index, so the continuation is the one the uninterrupted run would have taken). `--resume auto` takes
the most advanced of the complete and partial checkpoints; a partial one is removed once its epoch
is complete.
"""
from __future__ import annotations

import pathlib
import re
from typing import Any, Dict, Optional

import numpy as np
import torch
import yaml

from ckd_ros.errors import CheckpointError
from ckd_ros.fileio import atomic_path

FORMAT = "ckd_ros.train.v1"
PATTERN = re.compile(r"^CKD_ep(\d{4,})\.pth\.tar$")
PARTIAL_PATTERN = re.compile(r"^CKD_ep(\d{4,})\.partial\.pth\.tar$")


def checkpoint_path(directory, epoch: int, partial: bool = False) -> pathlib.Path:
    """`CKD_epNNNN.pth.tar` (epoch NNNN done) or `CKD_epNNNN.partial.pth.tar` (epoch NNNN interrupted)."""
    return pathlib.Path(directory) / f"CKD_ep{int(epoch):04d}{'.partial' if partial else ''}.pth.tar"


def list_checkpoints(directory, partial: bool = False) -> Dict[int, pathlib.Path]:
    """{epoch: path} of the complete (or, with partial=True, the interrupted) checkpoints, by epoch."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return {}
    pattern = PARTIAL_PATTERN if partial else PATTERN
    found = {}
    for p in directory.iterdir():
        m = pattern.match(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def latest_checkpoint(directory, include_partial: bool = False) -> Optional[pathlib.Path]:
    """The most advanced checkpoint: complete epoch E, or (include_partial) an interrupted epoch E+1."""
    progress = {float(e): p for e, p in list_checkpoints(directory).items()}
    if include_partial:
        progress.update({e - 0.5: p for e, p in list_checkpoints(directory, partial=True).items()})
    return progress[max(progress)] if progress else None


def remove_partials(directory, up_to_epoch: int) -> None:
    """Delete interrupted-epoch checkpoints of epochs <= up_to_epoch (their work is in a newer file)."""
    for epoch, path in list_checkpoints(directory, partial=True).items():
        if epoch <= up_to_epoch:
            path.unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    """The config as plain YAML-able values (in-memory datasets become a placeholder string)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return f"<{type(value).__name__}>"


def rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, model: torch.nn.Module, optimizer, epoch: int, global_step: int,
                    deploy_config, train_config: Dict[str, Any], scaler=None,
                    rng_per_rank: Optional[list] = None, epoch_steps: int = 0) -> pathlib.Path:
    """Write a training checkpoint atomically (readers never see a partial file). `epoch`: epochs
    finished; `epoch_steps`: iterations of the next epoch already done (an interrupted run)."""
    path = pathlib.Path(path)
    obj = {
        "net": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "net_type": "OSTrack_CKD",
        "actor_type": "OSTrack_CKD_Actor",
        "format": FORMAT,
        "global_step": int(global_step),
        "epoch_steps": int(epoch_steps),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state(),
        "rng_per_rank": rng_per_rank or [rng_state()],
        "ckd_config": deploy_config.to_dict(),
        "train_config": yaml.safe_dump(_plain(train_config), sort_keys=False),
    }
    with atomic_path(path) as tmp:
        torch.save(obj, str(tmp))
    return path


def load_training_checkpoint(path) -> Dict[str, Any]:
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint to resume from not found: {path}")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot resume from {path}: not a ckd_ros training checkpoint "
                       f"({type(exc).__name__}); use init.type: ckd to start from other CKD files") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ckd_ros training checkpoint (no '{FORMAT}' tag); "
                       "use init.type: ckd to start from it instead of resuming")
    return obj


def prune_checkpoints(directory, keep_last: int) -> None:
    if keep_last <= 0:
        return
    found = list_checkpoints(directory)
    for epoch in list(found)[:-keep_last]:
        found[epoch].unlink(missing_ok=True)
