"""The official metric protocols: per-frame errors, per-sequence hit counts, aggregation, metrics.

* `gtot`    GTOT toolkit: min/max over the two ground truths, frames pooled over the whole dataset,
            MPR = share of frames with centre error < 5 px (strict), MSR = trapezoid over 0:0.02:1.
* `rgbt234` RGBT234 MPR/MSR code: min/max over two ground truths, averaged over sequences,
            MPR at <= 20 px, MSR = mean of the 21-point success curve.
* `vtuav`   DUT-VTUAV toolkit: as rgbt234 after taking result rows 0, 10, 20, ...
* `rgbt210` rgbt package: one ground truth, first result row replaced, PR/SR as rgbt234.
* `lasher`  LasHeR toolkit: invalid result rows repaired, first row replaced, invalid ground truth
            scored -1 (a hit for PR/NPR, a miss for SR), all-zero curves dropped before averaging.
Thresholds are MATLAB colon vectors (see thresholds.py). Values are fractions here, percent in metrics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ckd_ros.boxes import centre_error, iou
from ckd_ros.errors import CKDError
from ckd_ros.eval.thresholds import GTOT_PIXELS, NORM_51, OVERLAP_21, OVERLAP_51, PIXELS_51
from ckd_ros.frames.datasets import GroundTruth, normalise_protocol

EPS = float(np.finfo(float).eps)  # MATLAB eps, used by the LasHeR toolkit


@dataclass(frozen=True)
class CurveSpec:
    key: str  # "precision", "norm_precision" or "success"
    metric: str  # the metric this curve's plot is ranked by
    thresholds: np.ndarray
    xlabel: str
    ylabel: str
    title: str


@dataclass
class SequenceCounts:
    """Hits per threshold of one sequence, with its number of ground-truth rows."""

    name: str
    length: int
    counts: Dict[str, np.ndarray]


def hits_le(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return (values[None, :] <= thresholds[:, None]).sum(axis=1)  # NaN never counts


def hits_lt(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return (values[None, :] < thresholds[:, None]).sum(axis=1)


def hits_gt(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return (values[None, :] > thresholds[:, None]).sum(axis=1)


def matlab_auc(x: np.ndarray, y: np.ndarray) -> float:
    """GTOT toolkit `auc.m`: mean of the upper and lower rectangle sums, i.e. the trapezoid rule."""
    x2 = np.append(x, 1.0)
    y2 = np.append(y, 1.0)
    xdiff = np.concatenate([[x2[0]], np.diff(x2)])
    upper = np.sum(y2 * xdiff)
    lower = np.sum(np.concatenate([[0.0], y2[:-1]]) * xdiff)
    return float((upper + lower) / 2)


def align_results(boxes: np.ndarray, gt: GroundTruth) -> np.ndarray:
    """Sub-sample to the annotated frames (VTUAV: rows 0, 10, ...) and truncate to the ground truth.
    Fewer rows than annotated frames is an error (the official toolkits fail on it too)."""
    sampled = boxes[:: gt.stride] if gt.stride > 1 else boxes
    if len(sampled) < gt.length:
        need = (gt.length - 1) * gt.stride + 1
        per = f" (one row per image frame; the ground truth annotates every {gt.stride}th)" if gt.stride > 1 else ""
        raise CKDError(f"sequence {gt.name!r}: the result has {len(boxes)} rows but needs at least {need}{per}; "
                       "the result file is incomplete, re-run the tracker on this sequence")
    return np.array(sampled[: gt.length], dtype=np.float64)


def fused_errors(boxes: np.ndarray, gts: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Per frame: minimum centre error and maximum IoU over the ground truths, ignoring NaN as MATLAB's
    min/max do (a NaN survives only when every modality gives NaN)."""
    err = centre_error(boxes, gts[0])
    ov = iou(boxes, gts[0])
    for gt in gts[1:]:
        err = np.fmin(err, centre_error(boxes, gt))
        ov = np.fmax(ov, iou(boxes, gt))
    return err, ov


class Protocol:
    name = ""
    title = ""
    metrics: Tuple[str, ...] = ()
    curves: Tuple[CurveSpec, ...] = ()

    def sequence_counts(self, gt: GroundTruth, boxes: np.ndarray) -> SequenceCounts:
        raise NotImplementedError

    def sequence_rates(self, seq: SequenceCounts) -> Dict[str, np.ndarray]:
        return {k: v / seq.length for k, v in seq.counts.items()}

    def aggregate(self, seqs: Sequence[SequenceCounts]) -> Dict[str, np.ndarray]:
        """Dataset curves: the mean over sequences of their rate curves (GTOT overrides: pooled)."""
        out = {}
        for spec in self.curves:
            rates = np.array([self.sequence_rates(s)[spec.key] for s in seqs])
            out[spec.key] = rates.mean(axis=0) if len(rates) else np.zeros(len(spec.thresholds))
        return out

    def metric_values(self, curves: Dict[str, np.ndarray]) -> Dict[str, float]:
        raise NotImplementedError

    def summarise(self, seqs: Sequence[SequenceCounts]) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
        curves = self.aggregate(seqs)
        return self.metric_values(curves), curves

    def per_sequence(self, seq: SequenceCounts) -> Dict[str, float]:
        """The protocol's metrics computed on one sequence alone (for tables and debugging)."""
        return self.metric_values(self.sequence_rates(seq))


def _precision_spec(thresholds, metric, title="Precision plot") -> CurveSpec:
    return CurveSpec("precision", metric, thresholds, "Location error threshold (px)", "Precision", title)


def _success_spec(thresholds, metric, title="Success plot") -> CurveSpec:
    return CurveSpec("success", metric, thresholds, "Overlap threshold", "Success rate", title)


class GTOTProtocol(Protocol):
    name, title = "gtot", "GTOT"
    metrics = ("MPR", "MSR")
    curves = (_precision_spec(GTOT_PIXELS, "MPR", "Maximum precision plot"),
              _success_spec(OVERLAP_51, "MSR", "Maximum success plot"))
    pixel_threshold_index = 10  # 0:0.5:25 -> 5 px

    def sequence_counts(self, gt: GroundTruth, boxes: np.ndarray) -> SequenceCounts:
        boxes = align_results(boxes, gt)
        err, ov = fused_errors(boxes, gt.boxes)
        return SequenceCounts(gt.name, gt.length, {
            "precision": hits_lt(err, GTOT_PIXELS),  # strict <, as main_drawResult.m
            "success": hits_gt(ov, OVERLAP_51),
        })

    def aggregate(self, seqs: Sequence[SequenceCounts]) -> Dict[str, np.ndarray]:
        # pooled over all frames of all sequences, not averaged per sequence
        total = sum(s.length for s in seqs)
        return {spec.key: sum(s.counts[spec.key] for s in seqs) / max(total, 1) for spec in self.curves}

    def metric_values(self, curves: Dict[str, np.ndarray]) -> Dict[str, float]:
        return {"MPR": 100.0 * float(curves["precision"][self.pixel_threshold_index]),
                "MSR": 100.0 * matlab_auc(OVERLAP_51, curves["success"])}


class SequenceMeanProtocol(Protocol):
    """RGBT234 / VTUAV / RGBT210: sequence-averaged precision at 20 px and mean success."""

    replace_first = False
    pr_name, sr_name = "MPR", "MSR"

    def __init__(self) -> None:
        self.metrics = (self.pr_name, self.sr_name)
        self.curves = (_precision_spec(PIXELS_51, self.pr_name), _success_spec(OVERLAP_21, self.sr_name))

    def sequence_counts(self, gt: GroundTruth, boxes: np.ndarray) -> SequenceCounts:
        boxes = align_results(boxes, gt)
        if self.replace_first:
            boxes[0] = gt.boxes[0][0]
        err, ov = fused_errors(boxes, gt.boxes)
        return SequenceCounts(gt.name, gt.length, {
            "precision": hits_le(err, PIXELS_51),
            "success": hits_gt(ov, OVERLAP_21),
        })

    def metric_values(self, curves: Dict[str, np.ndarray]) -> Dict[str, float]:
        return {self.pr_name: 100.0 * float(curves["precision"][20]),
                self.sr_name: 100.0 * float(np.mean(curves["success"]))}


class RGBT234Protocol(SequenceMeanProtocol):
    name, title = "rgbt234", "RGBT234"


class VTUAVProtocol(SequenceMeanProtocol):
    name, title = "vtuav", "VTUAV"  # the 10-frame sub-sampling comes from GroundTruth.stride


class RGBT210Protocol(SequenceMeanProtocol):
    name, title = "rgbt210", "RGBT210"
    replace_first = True
    pr_name, sr_name = "PR", "SR"


class LasHeRProtocol(Protocol):
    name, title = "lasher", "LasHeR"
    metrics = ("PR", "NPR", "SR")
    curves = (_precision_spec(PIXELS_51, "PR"),
              CurveSpec("norm_precision", "NPR", NORM_51, "Normalized location error threshold",
                        "Normalized precision", "Normalized precision plot"),
              _success_spec(OVERLAP_21, "SR"))

    def sequence_counts(self, gt: GroundTruth, boxes: np.ndarray) -> SequenceCounts:
        err, nerr, ov = lasher_frame_errors(align_results(boxes, gt), gt.boxes[0])
        return SequenceCounts(gt.name, gt.length, {
            "precision": hits_le(err, PIXELS_51),
            "norm_precision": hits_le(nerr, NORM_51),
            "success": hits_gt(ov, OVERLAP_21),
        })

    def sequence_rates(self, seq: SequenceCounts) -> Dict[str, np.ndarray]:
        return {k: v / (seq.length + EPS) for k, v in seq.counts.items()}

    def aggregate(self, seqs: Sequence[SequenceCounts]) -> Dict[str, np.ndarray]:
        out = {}
        for spec in self.curves:
            rates = np.array([self.sequence_rates(s)[spec.key] for s in seqs]).reshape(len(seqs), -1)
            kept = rates[rates.sum(axis=1) > EPS]  # plot_draw_save.m drops all-zero curves
            out[spec.key] = kept.mean(axis=0) if len(kept) else np.zeros(len(spec.thresholds))
        return out

    def metric_values(self, curves: Dict[str, np.ndarray]) -> Dict[str, float]:
        return {"PR": 100.0 * float(curves["precision"][20]),
                "NPR": 100.0 * float(curves["norm_precision"][20]),
                "SR": 100.0 * float(np.mean(curves["success"]))}


def lasher_frame_errors(res: np.ndarray, anno: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LasHeR toolkit `calc_seq_err_robust.m` on results already truncated to the ground truth.

    Returns centre error (px), normalised centre error and IoU per frame; -1 where the ground truth is
    invalid (any value <= 0 or NaN).
    """
    n = len(anno)
    # Rows 2.. (1-based) with NaN, w <= 0 or h <= 0 take the previous, already repaired row, unless the
    # ground-truth row has NaN. Chains resolve to the last good row: a running max of good indices.
    bad = np.isnan(res).any(axis=1) | (res[:, 2] <= 0) | (res[:, 3] <= 0)
    repair = bad & ~np.isnan(anno).any(axis=1)
    repair[0] = False
    source = np.maximum.accumulate(np.where(repair, 0, np.arange(n)))
    rect = res[source].copy()
    rect[0] = anno[0]  # the first frame is not scored against the tracker's own output
    centre_gt = np.stack([anno[:, 0] + (anno[:, 2] - 1) / 2, anno[:, 1] + (anno[:, 3] - 1) / 2], axis=1)
    centre = np.stack([rect[:, 0] + (rect[:, 2] - 1) / 2, rect[:, 1] + (rect[:, 3] - 1) / 2], axis=1)
    err = np.sqrt(np.sum((centre - centre_gt) ** 2, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        # normalise each centre by the ground-truth size first, then subtract (the toolkit's order)
        scale = anno[:, 2:4]
        nerr = np.sqrt(np.sum((centre / scale - centre_gt / scale) ** 2, axis=1))
    valid = (anno > 0).sum(axis=1) == 4
    ov = np.full(n, -1.0)
    ov[valid] = iou(rect[valid], anno[valid])
    err[~valid] = -1.0
    nerr[~valid] = -1.0
    return err, nerr, ov


_PROTOCOLS = {p.name: p for p in (LasHeRProtocol(), RGBT234Protocol(), RGBT210Protocol(), GTOTProtocol(),
                                    VTUAVProtocol())}


def get_protocol(name: str) -> Protocol:
    return _PROTOCOLS[normalise_protocol(name)]


def protocol_names() -> List[str]:
    return list(_PROTOCOLS)
