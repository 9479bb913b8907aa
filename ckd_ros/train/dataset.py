"""The training set as a torch Dataset: sample i of epoch e on rank r is a pure function of (seed, r, e, i).

That gives DistributedSampler-like per-rank streams without a sampler, the same data whatever the
number of loader workers, and bit-exact resumption without saving any data RNG state.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ckd_ros.errors import CKDError, FrameError
from ckd_ros.train.augment import AugmentSpec, CropSpec, process_pair
from ckd_ros.train.sampler import PairSampler
from ckd_ros.train.sources import TrainSequence

MAX_ATTEMPTS = 100
MAX_REFS = 4  # unreadable-frame references a sample carries back to the main process


class PairDataset(Dataset):
    def __init__(self, sources: Sequence[Tuple[List[TrainSequence], float]], length: int,
                 specs: Dict[str, CropSpec], aug: AugmentSpec, stride: int, seed: int, rank: int = 0,
                 max_interval: int = 200, min_length: int = 20):
        self.sampler = PairSampler(sources, max_interval, min_length)
        self.length = int(length)
        self.specs, self.aug, self.stride = specs, aug, stride
        self.seed, self.rank = int(seed), int(rank)
        self.epoch = 0
        self.sequences = [seq for dataset in self.sampler.datasets for seq in dataset]
        self._index = {id(seq): k for k, seq in enumerate(self.sequences)}
        self._bad: Set[Tuple[int, int]] = set()  # (sequence number, frame) known unreadable in this process

    @property
    def total_frames(self) -> int:
        return sum(len(seq) for seq in self.sequences)

    def _frames(self, seq, i: int, refs: List[Tuple[int, int]]):
        """seq.frames(i), or None (recorded in `refs`) when a file of the pair is unreadable."""
        ref = (self._index[id(seq)], int(i))
        if ref in self._bad:
            return None
        try:
            return seq.frames(i)
        except FrameError:
            self._bad.add(ref)
            refs.append(ref)
            return None

    def describe_frame(self, ref: Tuple[int, int]) -> str:
        """'sequence <name> frame <i>: <why>' of an unreadable frame (re-read once, in the caller's process)."""
        seq = self.sequences[ref[0]]
        try:
            seq.frames(ref[1])
            why = "unreadable in a loader worker"
        except FrameError as exc:
            why = str(exc)
        return f"sequence {seq.name} frame {ref[1]}: {why}"

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, self.epoch, int(index)])
        refs: List[Tuple[int, int]] = []
        for _ in range(MAX_ATTEMPTS):  # OSTrack re-draws invalid samples (and pairs with an unreadable frame)
            seq, t_id, s_id = self.sampler.sample(rng)
            template, search = self._frames(seq, t_id, refs), self._frames(seq, s_id, refs)
            if template is None or search is None:
                continue
            sample = process_pair(template, seq.boxes[t_id], search, seq.boxes[s_id],
                                  self.specs, self.aug, self.stride, rng)
            if sample is not None:
                out = {k: torch.from_numpy(v) for k, v in sample.items()}
                found = np.full((MAX_REFS, 2), -1, np.int64)
                if refs:
                    found[:min(len(refs), MAX_REFS)] = refs[:MAX_REFS]
                out["unreadable"] = torch.from_numpy(found)  # (MAX_REFS, 2) new unreadable frames, -1 = none
                return out
        if refs:
            raise CKDError(f"{MAX_ATTEMPTS} samples in a row hit unreadable frames (e.g. "
                           f"{self.describe_frame(refs[0])}); check or re-download the training set")
        raise CKDError(f"{MAX_ATTEMPTS} samples in a row were invalid (crops all padding); check the boxes "
                       "of the training sequences")


class UnreadableFrames:
    """Main-process account of the unreadable frames the loader workers skipped (issue 18, kind 4).

    `update(batch)` collects the (sequence, frame) references of a batch; the first one is logged
    once (file and reason), and when more than `max_fraction` of the training set's frames are
    unreadable training stops with one `CKDError` line (config key `data.max_unreadable_fraction`).
    """

    def __init__(self, dataset: PairDataset, max_fraction: float, log: Callable[[str], None]) -> None:
        self.dataset, self.max_fraction, self.log = dataset, float(max_fraction), log
        self.found: Set[Tuple[int, int]] = set()
        self._logged = False

    def update(self, batch: Dict[str, torch.Tensor]) -> None:
        refs = batch.get("unreadable")
        if refs is None:
            return
        new = {(int(a), int(b)) for a, b in refs.reshape(-1, 2).tolist() if a >= 0} - self.found
        if not new:
            return
        self.found |= new
        total = max(1, self.dataset.total_frames)
        if not self._logged:
            self._logged = True
            self.log(f"[ckd train] warning: skipping unreadable training frames (counted; training stops above "
                     f"data.max_unreadable_fraction={self.max_fraction:g} of {total} frames); first: "
                     f"{self.dataset.describe_frame(min(new))}")
        if len(self.found) > self.max_fraction * total:
            raise CKDError(f"{len(self.found)} of {total} training frames are unreadable (more than "
                           f"data.max_unreadable_fraction={self.max_fraction:g}), e.g. "
                           f"{self.dataset.describe_frame(min(self.found))}; repair or re-download the dataset, "
                           "or raise data.max_unreadable_fraction")

    def summary(self) -> Optional[str]:
        """'N unreadable frames skipped' once any were found, else None."""
        return f"{len(self.found)} unreadable frames skipped" if self.found else None


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
