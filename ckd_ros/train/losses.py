"""CKD training losses (ckd-spec §4.4): OSTrack tracking loss and the style/content distillation terms.

Tracking loss of one head: 2·GIoU + 5·L1 + 1·focal, the box decoded at the argmax of the predicted
score map, the focal loss against OSTrack's Gaussian heat map. Distillation: style (channel mean and
unbiased std over tokens) between the two students; content (instance-normalised features) from each
detached teacher to the student of its modality. Each is summed over all blocks.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ckd_ros.model.head import decode_boxes

IN_EPS = 1e-5  # nn.InstanceNorm1d default, as the authors' content loss


# ---- boxes -------------------------------------------------------------------------------------
def box_xywh_to_xyxy(box: torch.Tensor) -> torch.Tensor:
    x, y, w, h = box.unbind(-1)
    return torch.stack([x, y, x + w, y + h], dim=-1)


def box_cxcywh_to_xyxy(box: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = box.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor):
    """Element-wise GIoU and IoU of two (N, 4) xyxy box sets (DETR/OSTrack box_ops)."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = torch.max(boxes1[:, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    union = area1 + area2 - inter
    iou = inter / union
    lt = torch.min(boxes1[:, :2], boxes2[:, :2])
    rb = torch.max(boxes1[:, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    area = wh[:, 0] * wh[:, 1]
    return iou - (area - union) / area, iou


# ---- Gaussian label map (lib/utils/heapmap_utils.py) --------------------------------------------
def gaussian_radius(width: torch.Tensor, height: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CornerNet radius, the 'bug version' OSTrack uses ((b + sqrt(d)) / 2 for all three roots)."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return torch.min(r1, torch.min(r2, r3))


def _gaussian2d(radius: int) -> np.ndarray:
    sigma = (2 * radius + 1) / 6
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    return g


def gaussian_label_map(boxes_xywh: torch.Tensor, feat_size: int) -> torch.Tensor:
    """(B, 4) search boxes normalised by the crop -> (B, 1, F, F) heat maps, peak 1 at the centre cell."""
    boxes = boxes_xywh.detach().float().cpu() * feat_size
    wh = boxes[:, 2:]
    centers = (boxes[:, :2] + wh / 2).round()
    radius = torch.clamp_min(gaussian_radius(wh[:, 0], wh[:, 1]), 0).to(torch.int).numpy()
    out = torch.zeros(len(boxes), 1, feat_size, feat_size)
    for i in range(len(boxes)):
        r = int(radius[i])
        x, y = int(centers[i, 0]), int(centers[i, 1])
        if not (0 <= x < feat_size and 0 <= y < feat_size):
            continue  # centre outside the crop: no positive cell (OSTrack's slicing would misbehave)
        gauss = torch.from_numpy(_gaussian2d(r)).float()
        left, right = min(x, r), min(feat_size - x, r + 1)
        top, bottom = min(y, r), min(feat_size - y, r + 1)
        patch = gauss[r - top:r + bottom, r - left:r + right]
        region = out[i, 0, y - top:y + bottom, x - left:x + right]
        out[i, 0, y - top:y + bottom, x - left:x + right] = torch.max(region, patch)
    return out.to(boxes_xywh.device)


def focal_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet focal loss on probabilities; sums over the batch, normalised by the positive count."""
    pos = target.eq(1).float()
    neg = target.lt(1).float()
    pred = torch.clamp(pred, 1e-12)
    pos_loss = (torch.log(pred) * torch.pow(1 - pred, alpha) * pos).sum()
    neg_loss = (torch.log(1 - pred) * torch.pow(pred, alpha) * torch.pow(1 - target, beta) * neg).sum()
    num_pos = pos.sum()
    if num_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / num_pos


def tracking_loss(head_out: Dict[str, torch.Tensor], gt_xywh: torch.Tensor, label_map: torch.Tensor,
                  weights: Dict[str, float]) -> Dict[str, torch.Tensor]:
    """OSTrack loss of one head: {'total', 'giou', 'l1', 'focal', 'iou'} (iou detached, for logs)."""
    score = head_out["score_map"].float()
    pred = decode_boxes(score, head_out["size_map"].float(), head_out["offset_map"].float())
    if torch.isnan(pred).any():
        raise FloatingPointError("the network output is NaN; lower the learning rate or disable AMP")
    pred_xyxy = box_cxcywh_to_xyxy(pred).view(-1, 4)
    gt_xyxy = box_xywh_to_xyxy(gt_xywh.float()).clamp(0.0, 1.0)
    giou, iou = generalized_box_iou(pred_xyxy, gt_xyxy)
    giou_l = (1 - giou).mean()
    l1 = F.l1_loss(pred_xyxy, gt_xyxy)
    focal = focal_loss(score, label_map)
    total = weights["giou"] * giou_l + weights["l1"] * l1 + weights["focal"] * focal
    return {"total": total, "giou": giou_l, "l1": l1, "focal": focal, "iou": iou.detach().mean()}


# ---- style / content distillation --------------------------------------------------------------
def _stat_dim(kind: str) -> int:
    # features are (B, N tokens, C): 'channel' statistics run over tokens, 'token' ones over channels
    if kind == "channel":
        return 1
    if kind == "token":
        return 2
    raise ValueError(f"statistics kind must be 'channel' or 'token', not {kind!r}")


def style_loss(f1: torch.Tensor, f2: torch.Tensor, kind: str = "channel") -> torch.Tensor:
    """mean over (sample, channel) of (mu1 - mu2)^2 + (sigma1 - sigma2)^2; unbiased std (torch.std)."""
    dim = _stat_dim(kind)
    f1, f2 = f1.float(), f2.float()
    mu1, mu2 = f1.mean(dim), f2.mean(dim)
    sd1, sd2 = f1.std(dim), f2.std(dim)
    return ((mu1 - mu2) ** 2 + (sd1 - sd2) ** 2).mean()


def instance_norm(f: torch.Tensor, kind: str = "channel") -> torch.Tensor:
    """The feature with its style removed: per (sample, channel) zero mean, unit biased variance."""
    dim = _stat_dim(kind)
    f = f.float()
    mean = f.mean(dim, keepdim=True)
    var = f.var(dim, unbiased=False, keepdim=True)
    return (f - mean) / torch.sqrt(var + IN_EPS)


def content_loss(teacher: torch.Tensor, student: torch.Tensor, kind: str = "channel") -> torch.Tensor:
    """MSE between instance-normalised features; the teacher is detached (stop-gradient)."""
    return F.mse_loss(instance_norm(student, kind), instance_norm(teacher.detach(), kind))


def style_distillation(blocks_rgb: Sequence[torch.Tensor], blocks_tir: Sequence[torch.Tensor],
                       kind: str = "channel") -> torch.Tensor:
    """L_SD: style loss between the two students, summed over blocks; both receive gradients."""
    return sum(style_loss(a, b, kind) for a, b in zip(blocks_rgb, blocks_tir, strict=True))


def content_distillation(teacher_blocks: Sequence[Sequence[torch.Tensor]],
                         student_blocks: Sequence[Sequence[torch.Tensor]], kind: str = "channel") -> torch.Tensor:
    """L_CD: sum over modality pairs (teacher, same-modality student) and blocks of the content loss."""
    total = 0.0
    for t_blocks, s_blocks in zip(teacher_blocks, student_blocks, strict=True):
        total = total + sum(content_loss(t, s, kind) for t, s in zip(t_blocks, s_blocks, strict=True))
    return total
