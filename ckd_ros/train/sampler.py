"""Which frames form a training pair (ckd-spec §4.1; OSTrack `TrackingSampler`, causal mode).

One template and one search frame: the template frame (the 'base') is a random visible frame
except the last; the search frame is a visible frame after it, less than `max_interval` (+ a gap
that grows by 5 after each failure) later (OSTrack's ranges exclude their end). Sequences are
eligible with more than 4 visible frames and at least `min_length` frames.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from ckd_ros.errors import CKDError
from ckd_ros.train.sources import TrainSequence


def _visible_ids(visible: np.ndarray, lo: int, hi: int, rng: np.random.Generator) -> Optional[int]:
    """A random visible index in [lo, hi) (clamped to the sequence), or None."""
    lo, hi = max(0, lo), min(hi, len(visible))
    valid = np.flatnonzero(visible[lo:hi]) + lo if hi > lo else np.empty(0, dtype=np.int64)
    if len(valid) == 0:
        return None
    return int(valid[rng.integers(len(valid))])


def sample_pair(visible: np.ndarray, max_interval: int, rng: np.random.Generator) -> Tuple[int, int]:
    """(template frame, search frame) with template < search; the gap widens by 5 on each failure."""
    gap_increase = 0
    for _ in range(1000):
        base = _visible_ids(visible, 0, len(visible) - 1, rng)
        if base is None:
            break
        search = _visible_ids(visible, base + 1, base + max_interval + gap_increase, rng)
        if search is not None:
            return base, search
        gap_increase += 5
    raise CKDError("no causal frame pair in a sequence that passed the eligibility check")


class PairSampler:
    """Picks a dataset by ratio, a sequence uniformly within it, then a causal frame pair."""

    def __init__(self, sources: Sequence[Tuple[List[TrainSequence], float]], max_interval: int = 200,
                 min_length: int = 20):
        self.max_interval = int(max_interval)
        self.datasets: List[List[TrainSequence]] = []
        weights = []
        for sequences, ratio in sources:
            eligible = [s for s in sequences if int(s.visible.sum()) > 4 and len(s) >= min_length]
            if eligible and ratio > 0:
                self.datasets.append(eligible)
                weights.append(float(ratio))
        if not self.datasets:
            raise CKDError(f"no usable training sequence: each needs >= {min_length} frames and more than 4 "
                           "visible targets (lower data.min_sequence_length for short sequences)")
        self.weights = np.asarray(weights) / np.sum(weights)

    def sample(self, rng: np.random.Generator) -> Tuple[TrainSequence, int, int]:
        d = int(rng.choice(len(self.datasets), p=self.weights))
        seq = self.datasets[d][int(rng.integers(len(self.datasets[d])))]
        template, search = sample_pair(seq.visible, self.max_interval, rng)
        return seq, template, search
