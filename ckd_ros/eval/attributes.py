"""Per-attribute scores (LasHeR): the protocol's aggregation over the sequences that have an attribute.

LasHeR ships one file per sequence (`AttriSeqsTxt/<seq>.txt`) with 19 comma-separated 0/1 flags in the
order of `LASHER_ATTRIBUTES`; the MATLAB toolkit's commented-out variant reads `annos/att/<seq>.txt` with
14 flags. A file with several rows (per-frame flags) marks the attribute when any frame has it.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from ckd_ros.frames.textio import read_matrix

LASHER_ATTRIBUTES = ("NO", "PO", "TO", "HO", "MB", "LI", "HI", "AIV", "LR", "DEF", "BC", "SA", "CM", "TC", "FL",
                     "OV", "FM", "SV", "ARC")
LASHER_TOOLKIT_ATTRIBUTES = ("SV", "FM", "OD", "IV", "CM", "MB", "BC", "SO", "DEF", "PO", "FO", "AM", "TO", "LI")


def attribute_names(count: int) -> List[str]:
    for names in (LASHER_ATTRIBUTES, LASHER_TOOLKIT_ATTRIBUTES):
        if count == len(names):
            return list(names)
    return [f"A{i + 1}" for i in range(count)]


def attribute_breakdown(dataset, protocol, seqs: Sequence) -> Dict[str, Dict[str, float]]:
    """attribute -> {metric: percent, "n": number of sequences}; empty when the dataset has no files."""
    finder = getattr(dataset, "attribute_file", None)
    if finder is None:
        return {}
    flags = {}
    for seq in seqs:
        path = finder(seq.name)
        if path is None:
            return {}  # partial attribute data would give misleading groups
        data = read_matrix(path, "attribute file")
        if data.size == 0:
            return {}
        flags[seq.name] = (data > 0).any(axis=0)
    widths = {len(v) for v in flags.values()}
    if len(widths) != 1:
        return {}
    names = attribute_names(widths.pop())
    table = np.array([flags[s.name] for s in seqs])
    out = {}
    for j, name in enumerate(names):
        subset = [s for s, has in zip(seqs, table[:, j]) if has]
        if subset:
            metrics, _ = protocol.summarise(subset)
            out[name] = {**metrics, "n": float(len(subset))}
    return out
