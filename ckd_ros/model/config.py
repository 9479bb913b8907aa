"""CKDConfig: the dimensions of a CKD student, with the released presets.

Free dimensions so smaller students (the demo model, users' own distillations) use the same code.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

from ckd_ros.errors import CKDError


@dataclass(frozen=True)
class CKDConfig:
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    head_channels: int = 256  # CENTER head NUM_CHANNELS (towers: c, c/2, c/4, c/8)
    patch_size: int = 16
    template_size: int = 128
    search_size: int = 256
    ce_loc: Tuple[int, ...] = ()  # 0-based blocks that eliminate search tokens
    ce_keep_ratio: Tuple[float, ...] = ()  # one ratio per CE block
    mce: bool = True  # True: one selection shared by RGB and TIR (MCE); False: per-branch CE
    drop_path_rate: float = 0.0  # training only (identity in eval)
    name: str = field(default="custom", compare=False)

    def __post_init__(self):
        # lists from JSON/YAML -> tuples so the config stays hashable
        object.__setattr__(self, "ce_loc", tuple(int(i) for i in self.ce_loc))
        object.__setattr__(self, "ce_keep_ratio", tuple(float(r) for r in self.ce_keep_ratio))
        self.validate()

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def template_feat_size(self) -> int:
        return self.template_size // self.patch_size

    @property
    def feat_size(self) -> int:
        """Side of the search feature grid and of the output maps (16 for 256/16)."""
        return self.search_size // self.patch_size

    @property
    def num_template_tokens(self) -> int:
        return self.template_feat_size**2

    @property
    def num_search_tokens(self) -> int:
        return self.feat_size**2

    @property
    def ctr_point_index(self) -> int:
        """Template token used as CE query (CTR_POINT): centre cell, 27 for an 8x8 grid."""
        t = self.template_feat_size
        c = (t - 1) // 2
        return c * t + c

    @property
    def keep_counts(self) -> Tuple[int, ...]:
        """Search tokens kept after each CE block: ceil applied to the current count (180, 126, 89)."""
        counts, n = [], self.num_search_tokens
        for ratio in self.ce_keep_ratio:
            n = math.ceil(ratio * n)
            counts.append(n)
        return tuple(counts)

    def validate(self) -> None:
        problems = []
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for size_name in ("template_size", "search_size"):
            if getattr(self, size_name) % self.patch_size:
                problems.append(f"{size_name} {getattr(self, size_name)} is not a multiple of patch_size")
        if self.head_channels % 8:
            problems.append(f"head_channels {self.head_channels} must be a multiple of 8")
        if len(self.ce_loc) != len(self.ce_keep_ratio):
            problems.append("ce_loc and ce_keep_ratio must have the same length")
        if any(not 0 <= i < self.depth for i in self.ce_loc) or list(self.ce_loc) != sorted(set(self.ce_loc)):
            problems.append(f"ce_loc {self.ce_loc} must be increasing block indices in [0, {self.depth})")
        if any(not 0.0 < r <= 1.0 for r in self.ce_keep_ratio):
            problems.append(f"ce_keep_ratio {self.ce_keep_ratio} must be in (0, 1]")
        if problems:
            raise CKDError("invalid CKDConfig: " + "; ".join(problems))

    # ---- presets -------------------------------------------------------------------------
    @classmethod
    def vitb(cls) -> CKDConfig:
        """Released stage-1 student, no candidate elimination (LasHeR 72.3/57.4)."""
        return cls(name="vitb")

    @classmethod
    def vitb_mce(cls) -> CKDConfig:
        """Headline deployed model: MCE at blocks 3, 6, 9 keeping 0.7 (LasHeR 73.2/58.1)."""
        return cls(ce_loc=(3, 6, 9), ce_keep_ratio=(0.7, 0.7, 0.7), mce=True, name="vitb_mce")

    @classmethod
    def vitb_ce(cls) -> CKDConfig:
        """Per-branch (independent) CE, the other reading of the README row 'CKD w/ CE DropMAE'."""
        return cls(ce_loc=(3, 6, 9), ce_keep_ratio=(0.7, 0.7, 0.7), mce=False, name="vitb_ce")

    @classmethod
    def demo_small(cls) -> CKDConfig:
        """Small student for the CPU demo: same structure, narrow and shallow."""
        return cls(embed_dim=128, depth=6, num_heads=4, head_channels=64,
                   ce_loc=(2, 4), ce_keep_ratio=(0.7, 0.7), mce=True, name="demo_small")

    @classmethod
    def parity_small(cls, mce: bool) -> CKDConfig:
        """The small model of ../shared/fixtures/ckd_parity (embed 32, 4 heads, head 32)."""
        ce = dict(ce_loc=(3, 6, 9), ce_keep_ratio=(0.7, 0.7, 0.7)) if mce else {}
        return cls(embed_dim=32, num_heads=4, head_channels=32, name="parity_mce" if mce else "parity_noce",
                   **ce)

    @classmethod
    def preset(cls, name: str) -> CKDConfig:
        presets = {"vitb": cls.vitb, "vitb_mce": cls.vitb_mce, "vitb_ce": cls.vitb_ce,
                   "demo_small": cls.demo_small,
                   "parity_noce": lambda: cls.parity_small(False), "parity_mce": lambda: cls.parity_small(True)}
        if name not in presets:
            raise CKDError(f"unknown model preset '{name}'; choose one of: {', '.join(presets)}")
        return presets[name]()

    # ---- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ce_loc"], d["ce_keep_ratio"] = list(self.ce_loc), list(self.ce_keep_ratio)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> CKDConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CKDError(f"unknown CKDConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes) -> CKDConfig:
        return dataclasses.replace(self, **changes)
