"""Evaluate one results folder against a dataset: `evaluate()` for numbers, `evaluate_tracker()` for
everything the reports need (curves, per-sequence values, LasHeR attribute breakdown)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from ckd_ros.eval.attributes import attribute_breakdown
from ckd_ros.eval.protocols import Protocol, SequenceCounts, get_protocol
from ckd_ros.eval.results import load_results, tracker_name
from ckd_ros.frames.datasets import Dataset, open_dataset


@dataclass
class EvalResult:
    tracker: str
    protocol: str
    results_dir: Path
    metrics: Dict[str, float]  # percent
    curves: Dict[str, np.ndarray]  # curve key -> dataset curve (fractions), thresholds in the protocol
    sequences: List[SequenceCounts]
    per_sequence: Dict[str, Dict[str, float]]  # sequence -> metric -> percent
    attributes: Dict[str, Dict[str, float]] = field(default_factory=dict)  # attribute -> metrics (+ "n")

    @property
    def frames(self) -> int:
        return sum(s.length for s in self.sequences)


def evaluate_tracker(dataset: Dataset, results_dir: Union[str, Path], tracker: Optional[str] = None,
                     attributes: bool = True) -> EvalResult:
    protocol: Protocol = get_protocol(dataset.protocol)
    results_dir = Path(results_dir).expanduser()
    tracker = tracker or tracker_name(results_dir)
    boxes = load_results(results_dir, dataset.names, tracker)
    seqs = [protocol.sequence_counts(dataset.ground_truth(n), boxes[n]) for n in dataset.names]
    metrics, curves = protocol.summarise(seqs)
    per_seq = {s.name: protocol.per_sequence(s) for s in seqs}
    result = EvalResult(tracker, protocol.name, results_dir, metrics, curves, seqs, per_seq)
    if attributes:
        result.attributes = attribute_breakdown(dataset, protocol, seqs)
    return result


def evaluate(dataset_dir: Union[str, Path], results_dir: Union[str, Path], protocol: str) -> Dict[str, float]:
    """`{metric: value}` in percent: PR/NPR/SR (lasher), MPR/MSR (rgbt234, gtot, vtuav), PR/SR (rgbt210)."""
    dataset = open_dataset(protocol, dataset_dir)
    return dict(evaluate_tracker(dataset, results_dir, attributes=False).metrics)
