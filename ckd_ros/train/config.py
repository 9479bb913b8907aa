"""Training configuration: YAML file -> validated nested dict, with `a.b=value` overrides.

Defaults reproduce the paper's stage 1 (ckd-spec §4); the files under config/ only state what differs.
Unknown keys are errors (a typo must not silently train with a default).
"""
from __future__ import annotations

import pathlib
from typing import Any, Dict, Iterable, Optional, Union

import yaml

from ckd_ros.errors import CKDError
from ckd_ros.model.config import CKDConfig

STAGES = ("teachers", "distill", "mce")
STAGE_ALIASES = {"1": "distill", "stage1": "distill", "2": "mce", "stage2": "mce", "0": "teachers"}
INIT_TYPES = ("none", "pretrained", "ckd", "teachers")
DATASET_TYPES = ("lasher", "rgbt234", "rgbt210", "gtot", "vtuav", "synthetic", "arrays")

DEFAULTS: Dict[str, Any] = {
    "name": "ckd",
    # model: optional `preset` (a CKDConfig.preset name; default: the CKDConfig() ViT-B fields) plus
    # any CKDConfig field; `drop_path_rate` is the training value (identity at inference).
    "model": {"drop_path_rate": 0.1},
    # teachers: teacher pre-training only (tracking losses of the two single-modal trackers);
    # distill: stage 1 (CKD, no CE); mce: stage 2 (CE on, all branches prune with the students' selection)
    "stage": "distill",
    "ce": "auto",  # auto: on for stage mce, off otherwise; true/false force it
    # none: random init; pretrained: single-modal OSTrack/DropTrack file; ckd: a CKD training/released
    # checkpoint (all 878 keys); teachers: a CKD checkpoint whose teachers initialise the students too
    "init": {"type": "none", "path": None},
    "resume": None,  # null, "auto" (latest checkpoint in output.dir) or a checkpoint path
    "data": {
        "datasets": [],
        "samples_per_epoch": 60000,  # over all ranks
        "max_sample_interval": 200,
        "min_sequence_length": 20,
        "template": {"factor": 2.0, "center_jitter": 0.0, "scale_jitter": 0.0},
        "search": {"factor": 4.0, "center_jitter": 3.0, "scale_jitter": 0.25},
        "augment": {"grayscale": 0.05, "flip": 0.5, "brightness": 0.2, "crop_flip": 0.5},
        "num_workers": 0,
        # unreadable frames (truncated/corrupt files) are skipped, counted and logged once; training
        # aborts (one line) when more than this fraction of the training set's frames is unreadable
        "max_unreadable_fraction": 0.1,
        "val": None,  # {datasets: [...], samples: N, every: epochs}
    },
    "loss": {
        "giou": 2.0, "l1": 5.0, "focal": 1.0,
        "teacher_weight": 1.0,  # weight of each teacher's tracking loss
        "student_weight": 1.0,  # weight of the fused head's tracking loss
        "style_weight": 0.01, "content_weight": 0.1,
        "style_type": "channel", "content_type": "channel",  # or "token"
    },
    "mask": {"ratio": 0.25},  # masked modelling: search patches dropped with this probability; 0 = off
    "optim": {
        "batch_size": 10,  # per process
        "epochs": 30,
        "weight_decay": 1e-4,
        "param_groups": [["head", 5e-5], ["rgb_branch", 5e-6], ["tir_branch", 5e-6],
                         ["teacher_rgb", 5e-6], ["teacher_tir", 5e-6]],
        "grad_clip": 0.1,
        "amp": False,  # false, "fp16" (CUDA) or "bf16"
    },
    "seed": 42,
    "device": "auto",  # auto, cpu, cuda, cuda:N
    "threads": 0,  # torch intra-op threads; 0 = leave torch's default
    "output": {"dir": "runs/ckd", "save_every": 1, "keep_last": 0, "tensorboard": True, "progress": True,
               "log_every": 10},
}

# Sections whose content is free-form (validated elsewhere).
_FREE = {("model",), ("data", "datasets"), ("data", "val"), ("optim", "param_groups"), ("init",)}


def _copy(value: Any) -> Any:
    """Copy the containers, share the leaves (in-memory frame arrays are not duplicated)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _merge(base: Dict[str, Any], update: Dict[str, Any], where: tuple) -> Dict[str, Any]:
    out = _copy(base)
    for key, value in update.items():
        path = where + (key,)
        if key not in base:
            raise CKDError(f"unknown training config key '{'.'.join(path)}'; known here: {sorted(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict) and path not in _FREE:
            out[key] = _merge(base[key], value, path)
        elif path in _FREE and isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = {**base[key], **_copy(value)}  # free-form: keys checked by their user
        else:
            out[key] = _copy(value)
    return out


def parse_override(text: str) -> Dict[str, Any]:
    """'optim.epochs=2' -> {'optim': {'epochs': 2}}; the value is parsed as YAML."""
    if "=" not in text:
        raise CKDError(f"override '{text}' must look like key.sub=value (e.g. optim.epochs=2)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise CKDError(f"override '{text}': cannot parse the value ({exc.__class__.__name__})") from None
    nested: Dict[str, Any] = value
    for part in reversed(key.strip().split(".")):
        if not part:
            raise CKDError(f"override '{text}' has an empty key part")
        nested = {part: nested}
    return nested


def load_config(source: Union[str, pathlib.Path, Dict[str, Any], None],
                overrides: Optional[Iterable[Union[str, Dict[str, Any]]]] = None) -> Dict[str, Any]:
    """Defaults <- file or dict <- overrides ('a.b=v' strings or dicts), then validated."""
    if source is None:
        user: Dict[str, Any] = {}
    elif isinstance(source, dict):
        user = source
    else:
        path = pathlib.Path(source)
        if not path.is_file():
            raise CKDError(f"training config {path} not found")
        try:
            user = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise CKDError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(user, dict):
            raise CKDError(f"{path} must hold a mapping at the top level")
    cfg = _merge(DEFAULTS, user, ())
    for item in overrides or ():
        cfg = _merge(cfg, parse_override(item) if isinstance(item, str) else item, ())
    return validate(cfg)


def validate(cfg: Dict[str, Any]) -> Dict[str, Any]:
    stage = STAGE_ALIASES.get(str(cfg["stage"]), str(cfg["stage"]))
    if stage not in STAGES:
        raise CKDError(f"stage '{cfg['stage']}' unknown; choose one of {STAGES} (or 1 / 2)")
    cfg["stage"] = stage
    if cfg["ce"] not in ("auto", True, False):
        raise CKDError(f"ce must be auto, true or false, not {cfg['ce']!r}")
    init = cfg["init"]
    if not isinstance(init, dict) or init.get("type", "none") not in INIT_TYPES:
        raise CKDError(f"init.type must be one of {INIT_TYPES}")
    init.setdefault("type", "none")
    init.setdefault("path", None)
    unknown = set(init) - {"type", "path"}
    if unknown:
        raise CKDError(f"unknown init keys {sorted(unknown)}; known: type, path")
    if init["type"] != "none" and not init["path"]:
        raise CKDError(f"init.type {init['type']} needs init.path")
    for key in ("style_type", "content_type"):
        if cfg["loss"][key] not in ("channel", "token"):
            raise CKDError(f"loss.{key} must be 'channel' or 'token'")
    if not 0.0 <= float(cfg["mask"]["ratio"]) < 1.0:
        raise CKDError("mask.ratio must be in [0, 1)")
    optim = cfg["optim"]
    if int(optim["batch_size"]) < 1 or int(optim["epochs"]) < 1:
        raise CKDError("optim.batch_size and optim.epochs must be >= 1")
    groups = optim["param_groups"]
    if not groups or not all(isinstance(g, (list, tuple)) and len(g) == 2 and isinstance(g[0], str)
                             for g in groups):
        raise CKDError("optim.param_groups must be a list of [name_substring, lr] pairs")
    if optim["amp"] not in (False, None, "fp16", "bf16"):
        raise CKDError("optim.amp must be false, 'fp16' or 'bf16'")
    data = cfg["data"]
    try:
        frac = float(data["max_unreadable_fraction"])
    except (TypeError, ValueError):
        frac = -1.0
    if not 0.0 <= frac <= 1.0:
        raise CKDError(f"data.max_unreadable_fraction must be a number in [0, 1], not "
                       f"{data['max_unreadable_fraction']!r}")
    if not data["datasets"]:
        raise CKDError("data.datasets is empty: list at least one training set "
                       "(e.g. {type: synthetic, num_sequences: 8} or {type: lasher, root: /data/LasHeR/trainingset})")
    for entry in list(data["datasets"]) + list((data.get("val") or {}).get("datasets", [])):
        if not isinstance(entry, dict) or entry.get("type") not in DATASET_TYPES:
            raise CKDError(f"each dataset needs type in {DATASET_TYPES}; got {entry!r}")
    model_config(cfg, for_training=True)  # raises on bad model fields or a CE stage without CE blocks
    return cfg


def model_config(cfg: Dict[str, Any], for_training: bool = False) -> CKDConfig:
    """The deployable student's CKDConfig; `for_training` adds drop path and the stage's CE setting."""
    fields = dict(cfg["model"])
    preset = fields.pop("preset", None)
    drop_path = float(fields.pop("drop_path_rate", 0.0))
    base = CKDConfig.preset(preset) if preset else CKDConfig(name="custom")
    try:
        config = base.replace(**fields) if fields else base
    except TypeError as exc:
        raise CKDError(f"model section: {exc}") from None
    if not for_training:
        return config
    config = config.replace(drop_path_rate=drop_path)
    if not ce_enabled(cfg):
        config = config.replace(ce_loc=(), ce_keep_ratio=())
    elif not config.ce_loc:
        raise CKDError("candidate elimination is on for this stage but the model has no ce_loc; "
                       "use a CE preset (vitb_mce, demo_small) or set model.ce_loc / model.ce_keep_ratio")
    return config


def ce_enabled(cfg: Dict[str, Any]) -> bool:
    return cfg["stage"] == "mce" if cfg["ce"] == "auto" else bool(cfg["ce"])
