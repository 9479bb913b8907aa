"""Benchmark evaluation for RGB-T tracking: dataset readers, the official metric protocols (LasHeR,
RGBT234, RGBT210, GTOT, VTUAV), reports and plots, and a runner for our tracker (`ckd benchmark`).

Importing this package needs numpy only; plots import matplotlib and the runner imports the tracker
and backends lazily, inside the functions that use them.
"""
from ckd_ros.eval.evaluate import EvalResult, evaluate, evaluate_tracker
from ckd_ros.eval.protocols import get_protocol, protocol_names
from ckd_ros.frames.datasets import DATASETS, Dataset, GroundTruth, SequenceFrames, open_dataset

PROTOCOLS = tuple(DATASETS)

__all__ = ["DATASETS", "PROTOCOLS", "Dataset", "EvalResult", "GroundTruth", "SequenceFrames", "evaluate",
           "evaluate_tracker", "get_protocol", "open_dataset", "protocol_names"]
