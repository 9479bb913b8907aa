"""Masked modelling (ckd-spec §4.3): one random keep mask over the search patches, shared by both students.

keep[b, p] = U(0,1) > ratio, drawn per sample and patch (about `ratio` of the patches dropped, the
count is not fixed). `ViTBranch.embed` multiplies the patch embeddings by it before the positional
embedding, so a dropped patch becomes the bare position embedding. Teachers and templates never see it.
"""
from __future__ import annotations

from typing import Optional

import torch


def search_keep_mask(batch: int, num_search_tokens: int, ratio: float,
                     generator: Optional[torch.Generator] = None) -> Optional[torch.Tensor]:
    """(B, Lx, 1) float mask of 0/1, or None when masking is off (ratio 0)."""
    if ratio <= 0.0:
        return None
    u = torch.rand(batch, num_search_tokens, 1, generator=generator)
    return (u > ratio).float()


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """A generator that depends only on (seed, rank, step): resuming needs no saved mask RNG state."""
    gen = torch.Generator()
    gen.manual_seed((int(seed) * 1_000_003 + int(rank) * 7_919 + int(step) * 104_729 + 1) % (2**63 - 1))
    return gen
