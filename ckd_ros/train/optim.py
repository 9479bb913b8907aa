"""AdamW parameter groups by name substring (ckd-spec §4.5, the list form of TRAIN.PARAM_KEY).

Each parameter joins the first group whose substring its name contains; parameters matching no group
are frozen (requires_grad=False). Weight decay applies to every trainable tensor, as the authors'.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import nn

from ckd_ros.errors import CKDError


def param_groups(model: nn.Module, groups: Sequence[Sequence], weight_decay: float) -> List[Dict]:
    buckets: List[List[torch.nn.Parameter]] = [[] for _ in groups]
    for name, param in model.named_parameters():
        for k, (key, _) in enumerate(groups):
            if key in name:
                buckets[k].append(param)
                param.requires_grad_(True)
                break
        else:
            param.requires_grad_(False)
    out = []
    for (key, lr), params in zip(groups, buckets):
        if not params:
            raise CKDError(f"optim.param_groups: '{key}' matches no parameter name "
                           "(names look like rgb_branch.blocks.0.attn.qkv.weight, box_head_v.conv1_ctr.0.weight)")
        out.append({"params": params, "lr": float(lr), "weight_decay": float(weight_decay), "name": str(key)})
    return out


def build_optimizer(model: nn.Module, groups: Sequence[Sequence], weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, groups, weight_decay))


def trainable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
