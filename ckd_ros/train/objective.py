"""The CKD training objective (ckd-spec §4.4):

L = L_track(fused head) + 0.01·L_SD + 0.1·L_CD + L_track(RGB teacher head) + L_track(TIR teacher head),
each term present only when its part of the model ran (teacher pre-training runs only the teachers).
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch

from ckd_ros.train.losses import content_distillation, gaussian_label_map, style_distillation, tracking_loss

HEADS = (("student", "student_weight"), ("teacher_rgb", "teacher_weight"), ("teacher_tir", "teacher_weight"))


def needs_block_outputs(loss_cfg: Dict, parts) -> bool:
    return "students" in parts and (float(loss_cfg["style_weight"]) > 0 or
                                    ("teachers" in parts and float(loss_cfg["content_weight"]) > 0))


def ckd_objective(out: Dict, search_anno: torch.Tensor, loss_cfg: Dict,
                  feat_size: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """(total loss, detached terms for logging)."""
    weights = {k: float(loss_cfg[k]) for k in ("giou", "l1", "focal")}
    label = gaussian_label_map(search_anno, feat_size)
    total = search_anno.new_zeros(())
    terms: Dict[str, torch.Tensor] = {}
    for name, weight_key in HEADS:
        if name not in out:
            continue
        t = tracking_loss(out[name], search_anno, label, weights)
        total = total + float(loss_cfg[weight_key]) * t["total"]
        terms[f"loss/{name}"] = t["total"].detach()
        for k in ("giou", "l1", "focal"):
            terms[f"{k}/{name}"] = t[k].detach()
        terms[f"iou/{name}"] = t["iou"]
    blocks = out.get("blocks")
    if blocks and "rgb_branch" in blocks:
        if float(loss_cfg["style_weight"]) > 0:
            sd = style_distillation(blocks["rgb_branch"], blocks["tir_branch"], loss_cfg["style_type"])
            total = total + float(loss_cfg["style_weight"]) * sd
            terms["loss/style"] = sd.detach()
        if float(loss_cfg["content_weight"]) > 0 and "teacher_rgb" in blocks:
            cd = content_distillation([blocks["teacher_rgb"], blocks["teacher_tir"]],
                                      [blocks["rgb_branch"], blocks["tir_branch"]], loss_cfg["content_type"])
            total = total + float(loss_cfg["content_weight"]) * cd
            terms["loss/content"] = cd.detach()
    terms["loss/total"] = total.detach()
    return total, terms
