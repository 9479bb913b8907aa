"""The training set as a torch Dataset: sample i of epoch e on rank r is a pure function of (seed, r, e, i).

That gives DistributedSampler-like per-rank streams without a sampler, the same data whatever the
number of loader workers, and bit-exact resumption without saving any data RNG state.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ckd_ros.errors import CKDError
from ckd_ros.train.augment import AugmentSpec, CropSpec, process_pair
from ckd_ros.train.sampler import PairSampler
from ckd_ros.train.sources import TrainSequence

MAX_ATTEMPTS = 100


class PairDataset(Dataset):
    def __init__(self, sources: Sequence[Tuple[List[TrainSequence], float]], length: int,
                 specs: Dict[str, CropSpec], aug: AugmentSpec, stride: int, seed: int, rank: int = 0,
                 max_interval: int = 200, min_length: int = 20):
        self.sampler = PairSampler(sources, max_interval, min_length)
        self.length = int(length)
        self.specs, self.aug, self.stride = specs, aug, stride
        self.seed, self.rank = int(seed), int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, self.epoch, int(index)])
        for _ in range(MAX_ATTEMPTS):  # OSTrack re-draws invalid samples
            seq, t_id, s_id = self.sampler.sample(rng)
            sample = process_pair(seq.frames(t_id), seq.boxes[t_id], seq.frames(s_id), seq.boxes[s_id],
                                  self.specs, self.aug, self.stride, rng)
            if sample is not None:
                return {k: torch.from_numpy(v) for k, v in sample.items()}
        raise CKDError(f"{MAX_ATTEMPTS} samples in a row were invalid (crops all padding); check the boxes "
                       "of the training sequences")


def build_specs(data_cfg: Dict, template_size: int, search_size: int) -> Dict[str, CropSpec]:
    t, s = data_cfg["template"], data_cfg["search"]
    return {"template": CropSpec(float(t["factor"]), template_size, float(t["center_jitter"]),
                                 float(t["scale_jitter"])),
            "search": CropSpec(float(s["factor"]), search_size, float(s["center_jitter"]),
                               float(s["scale_jitter"]))}


def build_augment(data_cfg: Dict) -> AugmentSpec:
    a = data_cfg["augment"]
    unknown = set(a) - {"grayscale", "flip", "brightness", "crop_flip"}
    if unknown:
        raise CKDError(f"unknown data.augment keys {sorted(unknown)}")
    return AugmentSpec(**{k: float(v) for k, v in a.items()})
