"""Load CKD student weights from the authors' `.pth.tar`, plain state dicts, or converted files.

Converted files are safetensors with the CKDConfig in the metadata: no pickle at all on the robot.
"""
from __future__ import annotations

import json
import logging
import pathlib
import pickle
import sys
import types
import zipfile
from typing import Dict, Optional, Tuple

import torch

from ckd_ros.errors import CKDError
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


def read_state_dict(path) -> Tuple[Dict[str, torch.Tensor], Optional[CKDConfig], dict]:
    """Return (student state dict, config stored in the file or None, metadata)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CKDError(f"checkpoint not found: {path}")
    if _is_safetensors(path):
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            sd = {k: f.get_tensor(k) for k in f.keys()}
        config = CKDConfig.from_dict(json.loads(meta["ckd_config"])) if "ckd_config" in meta else None
        return _student_keys(sd, path), config, meta
    if not zipfile.is_zipfile(path) and path.stat().st_size < 8:
        raise CKDError(f"{path} is not a checkpoint (too small)")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False, pickle_module=_safe_pickle_module())
    except safe_pickle.RefusedGlobal as exc:
        raise CKDError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated zip, not a torch file...
        raise CKDError(f"cannot read {path} as a PyTorch checkpoint ({type(exc).__name__}: {exc}); "
                       "expected an official .pth.tar, a state dict, or a converted .safetensors") from None
    stored = None
    if isinstance(obj, dict) and isinstance(obj.get("ckd_config"), dict):
        stored = CKDConfig.from_dict(obj["ckd_config"])  # our training checkpoints say what they hold
    if isinstance(obj, dict) and isinstance(obj.get("net"), dict):
        obj = obj["net"]  # official container: {'net': state_dict, 'settings': ..., ...}
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CKDError(f"{path} holds no state dict (expected a dict of tensors or a dict with 'net')")
    return _student_keys(obj, path), stored, {}


def _student_keys(sd: Dict[str, torch.Tensor], path) -> Dict[str, torch.Tensor]:
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    kept = {k: v for k, v in sd.items() if k.startswith(STUDENT_PREFIXES)}
    if not kept:
        sample = ", ".join(list(sd)[:5])
        raise CKDError(f"{path} has no CKD student keys (rgb_branch.*, tir_branch.*, box_head.*); "
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
        raise CKDError(f"cannot infer the model size: key {exc} missing; pass a config/preset") from None
    base = CKDConfig.vitb_mce()
    if (embed, depth, head, patch, tz, tx, mlp) == (768, 12, 256, 16, 128, 256, 4.0):
        return base
    if embed % 64:
        raise CKDError(f"cannot infer num_heads for embed_dim {embed}; pass a config/preset "
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
        raise CKDError(f"{source} does not fit the {model.config.name} model: " + "; ".join(problems)
                       + ". Pick the preset/config that matches the checkpoint.")


def load_checkpoint(path, config: Optional[CKDConfig] = None, map_location="cpu") -> CKDStudent:
    """Build a CKDStudent in eval mode with the weights of `path` (official, plain or converted)."""
    from ckd_ros.model.config_source import resolve_config

    sd, stored, _ = read_state_dict(path)
    config = resolve_config(config=config, checkpoint=path, stored=stored,
                            log=logging.getLogger("ckd_ros.model").warning) or infer_config(sd)
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
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(out_path)


def convert(in_path, out_path, config: Optional[CKDConfig] = None) -> CKDStudent:
    model = load_checkpoint(in_path, config)
    save_converted(model, out_path, source_sha256=file_sha256(in_path))
    return model


def load_config_for(path) -> Optional[CKDConfig]:
    """The config stored in a converted file, or None."""
    return read_state_dict(path)[1]
