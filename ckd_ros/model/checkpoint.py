"""Load CKD student weights from the authors' `.pth.tar`, plain state dicts, or converted files.

Converted files are safetensors with the CKDConfig in the metadata: no pickle at all on the robot.
"""
from __future__ import annotations

import json
import pathlib
import pickle
import sys
import types
from typing import Dict, Optional, Tuple

import torch

from ckd_ros.errors import CheckpointError
from ckd_ros.fileio import atomic_path
from ckd_ros.hashing import file_sha256
from ckd_ros.model import safe_pickle
from ckd_ros.model.config import CKDConfig
from ckd_ros.model.student import CKDStudent

STUDENT_PREFIXES = ("rgb_branch.", "tir_branch.", "box_head.")  # the dot keeps box_head_v/_i out
FORMAT_TAG = "ckd_ros.student.v1"


def _is_safetensors(path: pathlib.Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _safe_pickle_module():
    """A `pickle_module` for torch.load whose Unpickler resolves only allow-listed globals."""
    mod = types.ModuleType("ckd_safe_pickle")
    mod.__dict__.update({k: getattr(pickle, k) for k in dir(pickle) if not k.startswith("__")})
    mod.Unpickler = safe_pickle.Unpickler
    mod.load = safe_pickle.load
    return mod


EXPECTED = "expected an official .pth.tar, a state dict, a ckd train checkpoint or a converted .safetensors"
CONTAINER_KEYS = ("net", "state_dict", "model")  # official/pytracking, Lightning-style, timm/DeiT-style


def _open_checked(path) -> pathlib.Path:
    path = pathlib.Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory: give the checkpoint file inside it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size < 8:
        raise CheckpointError(f"{path} is not a checkpoint ({path.stat().st_size} bytes: an interrupted copy?); "
                              f"{EXPECTED}")
    return path


def _read_safetensors(path: pathlib.Path) -> Tuple[Dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises SafetensorError (Rust) for truncated/corrupt files
        raise CheckpointError(f"cannot read {path} as safetensors ({type(exc).__name__}: {exc}): the file is "
                              "truncated or corrupt (interrupted copy?); copy it again or re-run `ckd convert`"
                              ) from None
    return sd, meta


def _read_pickle(path: pathlib.Path):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False, pickle_module=_safe_pickle_module())
    except safe_pickle.RefusedGlobal as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except MemoryError:
        raise CheckpointError(f"{path} does not fit in memory; {EXPECTED}") from None
    except Exception as exc:  # truncated zip, not a torch file, text file...
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); {EXPECTED}") from None


def filter_state_dict(obj, path) -> Tuple[Dict[str, torch.Tensor], Optional[CKDConfig]]:
    """The one adapter for foreign checkpoint layouts (like timm's `checkpoint_filter_fn`): unwrap the
    container ({'net'|'state_dict'|'model': sd, ...} or a plain sd), drop DDP's `module.` prefixes and
    return (every tensor, the CKDConfig a ckd train checkpoint carries under 'ckd_config' or None).
    Non-tensor side data (epochs, stats, settings) is ignored. Raises CheckpointError."""
    stored = None
    if isinstance(obj, dict) and isinstance(obj.get("ckd_config"), dict):
        stored = CKDConfig.from_dict(obj["ckd_config"])  # our training checkpoints say what they hold
    for key in CONTAINER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict (expected a dict of tensors or a dict with "
                              f"{'/'.join(repr(k) for k in CONTAINER_KEYS)})")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}, stored


def read_checkpoint(path) -> Tuple[Dict[str, torch.Tensor], Optional[CKDConfig], dict]:
    """The one checkpoint reader: (every tensor of the file, the config stored in it or None, metadata).

    Reads converted safetensors (config in the metadata, no pickle), the authors' `.pth.tar`, plain
    state dicts and ckd train checkpoints through the restricted unpickler (`safe_pickle`: NumPy data
    loads, code is refused). Keys keep their layout (`rgb_branch.*`, `backbone.*`, `teacher_*`...);
    `read_state_dict` keeps the student's. Raises CheckpointError with a one-line message.
    """
    path = _open_checked(path)
    if _is_safetensors(path):
        sd, meta = _read_safetensors(path)
        try:
            config = CKDConfig.from_dict(json.loads(meta["ckd_config"])) if "ckd_config" in meta else None
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: unreadable ckd_config metadata ({exc}); re-run `ckd convert`") from None
        if not sd:
            raise CheckpointError(f"{path} holds no tensors; {EXPECTED}")
        return sd, config, meta
    sd, stored = filter_state_dict(_read_pickle(path), path)
    return sd, stored, {}


def read_state_dict(path) -> Tuple[Dict[str, torch.Tensor], Optional[CKDConfig], dict]:
    """(student state dict, config stored in the file or None, metadata); see `read_checkpoint`."""
    sd, config, meta = read_checkpoint(path)
    return student_keys(sd, path), config, meta


def student_keys(sd: Dict[str, torch.Tensor], path) -> Dict[str, torch.Tensor]:
    """The deployable student's tensors (rgb_branch.*, tir_branch.*, box_head.*) of a full state dict."""
    kept = {k: v for k, v in sd.items() if k.startswith(STUDENT_PREFIXES)}
    if not kept:
        sample = ", ".join(list(sd)[:5])
        raise CheckpointError(f"{path} has no CKD student keys (rgb_branch.*, tir_branch.*, box_head.*); "
                              f"found e.g. {sample}")
    return kept


def infer_config(sd: Dict[str, torch.Tensor]) -> CKDConfig:
    """Architecture from tensor shapes. Heads and CE settings are not in the weights: a ViT-B file is
    taken as the deployed `vitb_mce` model; other widths assume 64-dim heads and no CE."""
    try:
        embed = sd["rgb_branch.patch_embed.proj.weight"].shape[0]
        patch = sd["rgb_branch.patch_embed.proj.weight"].shape[-1]
        depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("rgb_branch.blocks."))
        mlp = sd["rgb_branch.blocks.0.mlp.fc1.weight"].shape[0] / embed
        head = sd["box_head.conv1_ctr.0.weight"].shape[0]
        tz = int(round(sd["rgb_branch.pos_embed_z"].shape[1] ** 0.5)) * patch
        tx = int(round(sd["rgb_branch.pos_embed_x"].shape[1] ** 0.5)) * patch
    except KeyError as exc:
        raise CheckpointError(f"cannot infer the model size: key {exc} missing; pass a config/preset") from None
    base = CKDConfig.vitb_mce()
    if (embed, depth, head, patch, tz, tx, mlp) == (768, 12, 256, 16, 128, 256, 4.0):
        return base
    if embed % 64:
        raise CheckpointError(f"cannot infer num_heads for embed_dim {embed}; pass a config/preset "
                       "(e.g. --preset or a converted file that stores its config)")
    return CKDConfig(embed_dim=embed, depth=depth, num_heads=embed // 64, mlp_ratio=mlp, head_channels=head,
                     patch_size=patch, template_size=tz, search_size=tx, name="inferred")


def check_state_dict(model: torch.nn.Module, sd: Dict[str, torch.Tensor], source) -> None:
    """Strict key and shape check with a message that names the offending keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    shapes = sorted(f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
                    for k, v in expected.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape))
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes)):
        if items:
            more = f" (+{len(items) - 8} more)" if len(items) > 8 else ""
            problems.append(f"{label} [{len(items)}]: {', '.join(items[:8])}{more}")
    if problems:
        raise CheckpointError(f"{source} does not fit the {model.config.name} model: " + "; ".join(problems)
                       + ". Pick the preset/config that matches the checkpoint.")


def load_checkpoint(path, config: Optional[CKDConfig] = None, map_location="cpu") -> CKDStudent:
    """Build a CKDStudent in eval mode with the weights of `path` (official, plain or converted)."""
    sd, stored, _ = read_state_dict(path)
    config = config or stored or infer_config(sd)
    model = CKDStudent(config)
    check_state_dict(model, sd, path)
    model.load_state_dict(sd, strict=True)
    return model.eval().to(map_location)


def save_converted(model: CKDStudent, out_path, source_sha256: str = "", extra: Optional[dict] = None) -> None:
    """Write a deployable file: safetensors weights + config JSON in the metadata (no pickle)."""
    from safetensors.torch import save_file
    meta = {"format": FORMAT_TAG, "ckd_config": model.config.to_json(), "source_sha256": source_sha256,
            "torch": torch.__version__, "ckd_ros": sys.modules["ckd_ros"].__version__}
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(out_path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def convert(in_path, out_path, config: Optional[CKDConfig] = None) -> CKDStudent:
    model = load_checkpoint(in_path, config)
    save_converted(model, out_path, source_sha256=file_sha256(in_path))
    return model


def load_config_for(path) -> Optional[CKDConfig]:
    """The config stored in a converted file, or None."""
    return read_state_dict(path)[1]
