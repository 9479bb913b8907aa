"""CKDStudent: the deployed CKD network — RGB and TIR ViT branches in lock-step, fused CENTER head."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from ckd_ros.model.config import CKDConfig
from ckd_ros.model.head import CenterPredictor, decode_boxes
from ckd_ros.model.vit import ViTBranch, lockstep_forward


def fuse_search_features(feat_rgb: torch.Tensor, feat_tir: torch.Tensor, config: CKDConfig) -> torch.Tensor:
    """Channel concat (RGB first), search tokens only, as an NCHW-contiguous (B, 2C, F, F) map.

    Contiguity matters: a channels-last view picks another conv algorithm (1e-6-level drift).
    """
    feat = torch.cat([feat_rgb, feat_tir], dim=2)[:, -config.num_search_tokens:]
    b, n, c = feat.shape
    return feat.permute(0, 2, 1).contiguous().view(b, c, config.feat_size, config.feat_size)


class CKDStudent(nn.Module):
    """forward(z_rgb, z_tir, x_rgb, x_tir) -> {score_map, size_map, offset_map}.

    Inputs are ImageNet-normalised float tensors: templates (B,3,T,T), search crops (B,3,S,S).
    """

    def __init__(self, config: CKDConfig = None):
        super().__init__()
        self.config = config or CKDConfig.vitb_mce()
        self.rgb_branch = ViTBranch(self.config)
        self.tir_branch = ViTBranch(self.config)
        self.box_head = CenterPredictor(2 * self.config.embed_dim, self.config.head_channels,
                                        self.config.feat_size)

    def forward(self, z_rgb, z_tir, x_rgb, x_tir, return_extras: bool = False) -> Dict[str, torch.Tensor]:
        (feat_rgb, feat_tir), kept, _ = lockstep_forward(
            [self.rgb_branch, self.tir_branch], [z_rgb, z_tir], [x_rgb, x_tir], self.config)
        out = self.box_head(fuse_search_features(feat_rgb, feat_tir, self.config))
        if return_extras:
            out["feat_rgb"], out["feat_tir"] = feat_rgb, feat_tir
            out["pred_boxes"] = decode_boxes(out["score_map"], out["size_map"], out["offset_map"])
            # raster indices kept after each CE block: RGB branch (equal to TIR's under MCE)
            out["kept_idx"] = [layer[0] for layer in kept]
            out["kept_idx_tir"] = [layer[1] for layer in kept]
        return out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
