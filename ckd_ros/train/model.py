"""The four-branch CKD training model (ckd-spec §4.1, §4.2).

Registration order and names give the authors' 878-key state dict: `rgb_branch.*`, `tir_branch.*`,
`box_head.*` (the deployable student, taken from a `CKDStudent`), then `teacher_rgb.*`,
`teacher_tir.*`, `box_head_v.*` (RGB teacher head), `box_head_i.*` (TIR teacher head).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
from torch import nn

from ckd_ros.model.checkpoint import STUDENT_PREFIXES
from ckd_ros.model.config import CKDConfig
from ckd_ros.model.head import CenterPredictor, decode_boxes
from ckd_ros.model.student import CKDStudent, fuse_search_features
from ckd_ros.model.vit import ViTBranch, lockstep_forward

TEACHERS = ("teacher_rgb", "teacher_tir")
STUDENTS = ("rgb_branch", "tir_branch")


class _Unmasked:
    """A teacher as lockstep_forward sees it: same blocks, but the students' search mask is ignored."""

    def __init__(self, branch: ViTBranch):
        self.branch = branch
        self.blocks = branch.blocks

    def embed(self, z, x, keep_x=None):
        return self.branch.embed(z, x, None)

    def finish(self, tokens, search_index):
        return self.branch.finish(tokens, search_index)


def search_map(feat: torch.Tensor, config: CKDConfig) -> torch.Tensor:
    """Search tokens of one branch as a (B, C, F, F) map (a teacher head's input)."""
    s = feat[:, -config.num_search_tokens:]
    b, n, c = s.shape
    return s.permute(0, 2, 1).contiguous().view(b, c, config.feat_size, config.feat_size)


def _with_boxes(out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    out["pred_boxes"] = decode_boxes(out["score_map"], out["size_map"], out["offset_map"])
    return out


class CKDTrainingModel(nn.Module):
    """Teachers (one ViT + head per modality) and the students with the fused head, run in lock-step."""

    def __init__(self, config: CKDConfig):
        super().__init__()
        self.config = config
        student = CKDStudent(config)
        self.rgb_branch = student.rgb_branch
        self.tir_branch = student.tir_branch
        self.box_head = student.box_head
        self.teacher_rgb = ViTBranch(config)
        self.teacher_tir = ViTBranch(config)
        self.box_head_v = CenterPredictor(config.embed_dim, config.head_channels, config.feat_size)
        self.box_head_i = CenterPredictor(config.embed_dim, config.head_channels, config.feat_size)

    def forward(self, z_rgb, z_tir, x_rgb, x_tir, keep_x: Optional[torch.Tensor] = None,
                parts: Sequence[str] = ("teachers", "students"), block_outputs: bool = True):
        """Returns {'student', 'teacher_rgb', 'teacher_tir': head outputs (+pred_boxes),
        'blocks': {branch name: per-block outputs (B, N, C), before the final LN}} for the parts run.

        `keep_x` (B, Lx, 1) masks the students' search patches only. With CE on, every branch prunes
        with one selection, from the max of the students' attention maps when they run (spec §4.2).
        """
        names, branches, zs, xs = [], [], [], []
        if "teachers" in parts:
            names += list(TEACHERS)
            branches += [_Unmasked(self.teacher_rgb), _Unmasked(self.teacher_tir)]
            zs += [z_rgb, z_tir]
            xs += [x_rgb, x_tir]
        if "students" in parts:
            names += list(STUDENTS)
            branches += [self.rgb_branch, self.tir_branch]
            zs += [z_rgb, z_tir]
            xs += [x_rgb, x_tir]
        if not branches:
            raise ValueError(f"parts must name teachers and/or students, got {parts!r}")
        select_from = [names.index(n) for n in STUDENTS] if "students" in parts else None
        result = lockstep_forward(branches, zs, xs, self.config, keep_x=keep_x, select_from=select_from,
                                  shared=self.config.mce, return_block_outputs=block_outputs)
        feats = dict(zip(names, result.features))
        out: Dict[str, object] = {}
        if "teachers" in parts:
            out["teacher_rgb"] = _with_boxes(self.box_head_v(search_map(feats["teacher_rgb"], self.config)))
            out["teacher_tir"] = _with_boxes(self.box_head_i(search_map(feats["teacher_tir"], self.config)))
        if "students" in parts:
            fused = fuse_search_features(feats["rgb_branch"], feats["tir_branch"], self.config)
            out["student"] = _with_boxes(self.box_head(fused))
        if block_outputs:
            out["blocks"] = dict(zip(names, result.block_outputs))
        return out

    def student_state_dict(self) -> Dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if k.startswith(STUDENT_PREFIXES)}

    def export_student(self, config: Optional[CKDConfig] = None) -> CKDStudent:
        """A standalone CKDStudent (eval mode) with a copy of the student weights; `config` may switch
        CE on for deployment (CE has no parameters)."""
        student = CKDStudent((config or self.config).replace(drop_path_rate=0.0))
        student.load_state_dict(self.student_state_dict(), strict=True)
        return student.eval()
