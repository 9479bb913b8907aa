"""Initialising the training model (ckd-spec §3.5): single-modal OSTrack/DropTrack files, CKD files, or random.

Files are read by the model's one checkpoint reader (`ckd_ros.model.checkpoint.read_checkpoint`:
restricted unpickler, no code runs while loading; foreign container layouts adapted there).
"""
from __future__ import annotations

import math
from typing import Dict, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ckd_ros.errors import CKDError
from ckd_ros.model.checkpoint import read_checkpoint
from ckd_ros.model.head import CenterPredictor
from ckd_ros.model.vit import ViTBranch
from ckd_ros.train.model import CKDTrainingModel

DEAD_KEYS = ("cls_token", "pos_embed")  # present in the layout, unused by the one-stream forward
HEAD_CONV1 = tuple(f"conv1_{t}.0.weight" for t in ("ctr", "offset", "size"))


# ---- position embeddings ------------------------------------------------------------------------
def resize_grid_embed(pos: torch.Tensor, grid: int, mode: str = "bilinear") -> torch.Tensor:
    """(1, g*g, C) -> (1, grid*grid, C) by interpolating the square grid (no prefix tokens)."""
    n, c = pos.shape[1], pos.shape[2]
    old = int(round(math.sqrt(n)))
    if old * old != n:
        raise CKDError(f"position embedding with {n} tokens is not a square grid")
    if old == grid:
        return pos
    img = pos.reshape(1, old, old, c).permute(0, 3, 1, 2).float()
    img = F.interpolate(img, size=(grid, grid), mode=mode, align_corners=False)
    return img.permute(0, 2, 3, 1).reshape(1, grid * grid, c).to(pos.dtype)


def backbone_state(sd: Dict[str, torch.Tensor], branch: ViTBranch,
                   prefix: str = "backbone.") -> Dict[str, torch.Tensor]:
    """A branch state dict from a single-modal tracker: `backbone.*` keys, pos-embeds resized to this
    model's grids (bilinear), DropTrack's frame-identity embeddings folded in, and, for an ImageNet
    ViT without z/x tables, the 14x14 `pos_embed` interpolated as OSTrack's finetune_track (bicubic)."""
    c = branch.config
    out = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not out:
        sample = ", ".join(list(sd)[:4])
        raise CKDError(f"no '{prefix}*' keys in the pretrained file (found e.g. {sample}); "
                       "expected an OSTrack/DropTrack checkpoint")
    grids = {"pos_embed_z": c.template_feat_size, "pos_embed_x": c.feat_size}
    if "pos_embed_z" not in out and "pos_embed" in out:
        table = out["pos_embed"]
        if math.isqrt(table.shape[1]) ** 2 != table.shape[1]:
            table = table[:, 1:]  # cls token first
        for key, grid in grids.items():
            out[key] = resize_grid_embed(table, grid, mode="bicubic")
    for key, grid in grids.items():
        if key in out:
            out[key] = resize_grid_embed(out[key], grid)
            temporal = out.pop("temporal_" + key, None)
            if temporal is not None:
                out[key] = out[key] + temporal.reshape(1, 1, -1)
    expected = branch.state_dict()
    for key in DEAD_KEYS:  # dead tables of another size (e.g. a 384 model) are just dropped
        if key in out and tuple(out[key].shape) != tuple(expected[key].shape):
            out.pop(key)
    extra = sorted(k for k in out if k not in expected)
    for key in extra:
        out.pop(key)
    _check(expected, out, "pretrained backbone", optional=DEAD_KEYS)
    return out


def _check(expected: Dict[str, torch.Tensor], given: Dict[str, torch.Tensor], what: str,
           optional: Iterable[str] = ()) -> None:
    missing = sorted(k for k in expected if k not in given and k not in optional)
    shapes = sorted(f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                    if k in given and tuple(given[k].shape) != tuple(v.shape))
    if missing or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:4])})")
        if shapes:
            parts.append(f"wrong shapes ({'; '.join(shapes[:4])})")
        raise CKDError(f"{what} does not fit the model: " + ", ".join(parts)
                       + ". Check model.* in the training config against the checkpoint.")


def head_state(sd: Dict[str, torch.Tensor], head: CenterPredictor, fused: bool,
               prefix: str = "box_head.") -> Dict[str, torch.Tensor]:
    """A head state dict from a single-modal `box_head.*`; for the fused head the three first convs
    are concatenated with themselves along the input channels (both modality halves start equal)."""
    out = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if fused:
        for key in HEAD_CONV1:
            if key in out:
                out[key] = torch.cat([out[key], out[key]], dim=1)
    _check(head.state_dict(), out, f"pretrained head ({prefix}*)")
    return {k: v for k, v in out.items() if k in head.state_dict()}


def init_from_single_modal(model: CKDTrainingModel, sd: Dict[str, torch.Tensor]) -> None:
    """All four ViTs and all three heads from one single-modal tracker (spec §3.5)."""
    for name in ("rgb_branch", "tir_branch", "teacher_rgb", "teacher_tir"):
        branch = getattr(model, name)
        branch.load_state_dict(backbone_state(sd, branch), strict=False)  # dead tables may be absent
    model.box_head.load_state_dict(head_state(sd, model.box_head, fused=True), strict=True)
    for name in ("box_head_v", "box_head_i"):
        getattr(model, name).load_state_dict(head_state(sd, getattr(model, name), fused=False), strict=True)


def init_from_ckd(model: CKDTrainingModel, sd: Dict[str, torch.Tensor]) -> None:
    """The whole model from a CKD checkpoint (ours or the authors' training files)."""
    _check(model.state_dict(), sd, "CKD checkpoint")
    unexpected = sorted(set(sd) - set(model.state_dict()))
    if unexpected:
        raise CKDError(f"CKD checkpoint has keys the training model lacks: {', '.join(unexpected[:4])}"
                       f"{' ...' if len(unexpected) > 4 else ''}")
    model.load_state_dict(sd, strict=True)


def init_students_from_teachers(model: CKDTrainingModel) -> None:
    """Each student copies its modality's teacher; the fused head takes the RGB teacher head's
    first convs for channels 0..C-1 and the TIR teacher head's for C..2C-1 (other layers: RGB head)."""
    model.rgb_branch.load_state_dict(model.teacher_rgb.state_dict())
    model.tir_branch.load_state_dict(model.teacher_tir.state_dict())
    head = model.box_head_v.state_dict()
    tir_head = model.box_head_i.state_dict()
    for key in HEAD_CONV1:
        head[key] = torch.cat([head[key], tir_head[key]], dim=1)
    model.box_head.load_state_dict(head)


def random_init_(model: CKDTrainingModel, generator_seed: int) -> None:
    """From scratch, with the authors' initialisers (timm ViT: trunc-normal 0.02 linears, zero biases,
    unit LayerNorms, trunc-normal pos-embeds; OSTrack head: xavier-uniform). One random single-modal
    tracker initialises all branches, as a pretrained one would."""
    torch.manual_seed(generator_seed)
    vit = model.teacher_rgb
    for m in list(vit.modules()) + list(model.box_head_v.modules()):
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
            m.reset_parameters()  # PyTorch defaults, but drawn from the seeded generator
    for m in vit.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for p in (vit.pos_embed_z, vit.pos_embed_x, vit.pos_embed, vit.cls_token):
        nn.init.trunc_normal_(p, std=0.02)
    for p in model.box_head_v.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    single = {f"backbone.{k}": v.clone() for k, v in vit.state_dict().items()}
    single.update({f"box_head.{k}": v.clone() for k, v in model.box_head_v.state_dict().items()})
    init_from_single_modal(model, single)


def initialise(model: CKDTrainingModel, init: Dict, seed: int) -> str:
    """Apply the `init` section; returns a one-line description for the log."""
    kind, path = init.get("type", "none"), init.get("path")
    if kind == "none":
        random_init_(model, seed)
        return "random initialisation (from scratch)"
    if not path:
        raise CKDError(f"init.type {kind} needs init.path (the checkpoint to start from)")
    sd = read_checkpoint(path)[0]
    if kind == "pretrained":
        init_from_single_modal(model, sd)
        return f"all branches from the single-modal tracker {path}"
    if kind == "ckd":
        init_from_ckd(model, sd)
        return f"whole model from the CKD checkpoint {path}"
    if kind == "teachers":
        init_from_ckd(model, sd)
        init_students_from_teachers(model)
        return f"teachers from {path}; students copied from the teachers"
    raise CKDError(f"unknown init.type {kind!r}")
