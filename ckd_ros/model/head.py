"""OSTrack CENTER head (`box_head.*`): three conv towers for centre score, offset and size."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    # Sequential indices 0/1 give the authors' key names `convN_T.0.*` / `convN_T.1.*`.
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CenterPredictor(nn.Module):
    def __init__(self, in_channels: int, channels: int, feat_size: int):
        super().__init__()
        self.feat_size = feat_size
        widths = [in_channels, channels, channels // 2, channels // 4, channels // 8]
        for tower, k in (("ctr", 1), ("offset", 2), ("size", 2)):
            for j in range(4):
                setattr(self, f"conv{j + 1}_{tower}", _conv_bn_relu(widths[j], widths[j + 1]))
            setattr(self, f"conv5_{tower}", nn.Conv2d(widths[4], k, kernel_size=1))

    def _tower(self, name: str, x: torch.Tensor) -> torch.Tensor:
        for j in range(1, 5):
            x = getattr(self, f"conv{j}_{name}")(x)
        return getattr(self, f"conv5_{name}")(x)

    def forward(self, feat: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {
            "score_map": torch.clamp(torch.sigmoid(self._tower("ctr", feat)), 1e-4, 1 - 1e-4),
            "size_map": torch.clamp(torch.sigmoid(self._tower("size", feat)), 1e-4, 1 - 1e-4),
            "offset_map": self._tower("offset", feat),
        }


def decode_boxes(score_map: torch.Tensor, size_map: torch.Tensor, offset_map: torch.Tensor) -> torch.Tensor:
    """The head's own decode (`cal_bbox`): argmax cell, (cx, cy, w, h) normalised by the search crop.

    Returns (B, 1, 4). The tracker decodes the Hann-windowed map instead (tracking/).
    """
    b, _, fh, fw = score_map.shape
    idx = score_map.flatten(1).argmax(dim=1, keepdim=True)  # (B,1)
    iy = torch.div(idx, fw, rounding_mode="floor")
    ix = idx % fw
    gather = idx.unsqueeze(1).expand(b, 2, 1)
    size = size_map.flatten(2).gather(2, gather).squeeze(-1)
    offset = offset_map.flatten(2).gather(2, gather).squeeze(-1)
    cx = (ix.to(score_map.dtype) + offset[:, :1]) / fw
    cy = (iy.to(score_map.dtype) + offset[:, 1:]) / fh
    return torch.cat([cx, cy, size], dim=1).unsqueeze(1)
