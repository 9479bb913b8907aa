"""Tables and files for evaluation results: a ranked text table, CSV (overall, per sequence, per
attribute) and one JSON document with metrics and curves."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List, Sequence

from ckd_ros.eval.evaluate import EvalResult
from ckd_ros.eval.protocols import get_protocol


def ranked(results: Sequence[EvalResult], metric: str) -> List[EvalResult]:
    """Best first, as papers order their tables and plot legends (ties keep the given order)."""
    return sorted(results, key=lambda r: -r.metrics[metric])


def rank_metric(protocol: str) -> str:
    """Tables are ranked by the success metric (SR / MSR), the area papers lead with."""
    return get_protocol(protocol).metrics[-1]


def format_table(results: Sequence[EvalResult]) -> str:
    if not results:
        return ""
    protocol = get_protocol(results[0].protocol)
    metrics = list(protocol.metrics)
    rows = [[r.tracker] + [f"{r.metrics[m]:.2f}" for m in metrics] + [str(len(r.sequences)), str(r.frames)]
            for r in ranked(results, rank_metric(protocol.name))]
    header = ["Tracker"] + metrics + ["Seqs", "Frames"]
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [f"{protocol.title} ({', '.join(metrics)} in %)", line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    for r in results:
        if r.attributes:
            out.append("")
            out.append(format_attributes(r))
    return "\n".join(out)


def format_attributes(result: EvalResult) -> str:
    metrics = list(get_protocol(result.protocol).metrics)
    lines = [f"{result.tracker} per attribute ({', '.join(metrics)} in %)"]
    for name, vals in result.attributes.items():
        cells = "  ".join(f"{m} {vals[m]:6.2f}" for m in metrics)
        lines.append(f"  {name:<4} ({int(vals['n']):3d} seqs)  {cells}")
    return "\n".join(lines)


def write_csv(results: Sequence[EvalResult], out_dir: Path) -> List[Path]:
    """`<protocol>_metrics.csv`, `<protocol>_per_sequence.csv` and, when present, `_attributes.csv`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol = get_protocol(results[0].protocol)
    metrics = list(protocol.metrics)
    written = []
    path = out_dir / f"{protocol.name}_metrics.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["tracker"] + metrics + ["sequences", "frames", "results_dir"])
        for r in ranked(results, rank_metric(protocol.name)):
            w.writerow([r.tracker] + [f"{r.metrics[m]:.4f}" for m in metrics]
                       + [len(r.sequences), r.frames, str(r.results_dir)])
    written.append(path)
    path = out_dir / f"{protocol.name}_per_sequence.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["tracker", "sequence", "frames"] + metrics)
        for r in results:
            for s in r.sequences:
                w.writerow([r.tracker, s.name, s.length] + [f"{r.per_sequence[s.name][m]:.4f}" for m in metrics])
    written.append(path)
    if any(r.attributes for r in results):
        path = out_dir / f"{protocol.name}_attributes.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["tracker", "attribute", "sequences"] + metrics)
            for r in results:
                for name, vals in r.attributes.items():
                    w.writerow([r.tracker, name, int(vals["n"])] + [f"{vals[m]:.4f}" for m in metrics])
        written.append(path)
    return written


def to_json(results: Sequence[EvalResult], dataset_root: str = "") -> Dict:
    protocol = get_protocol(results[0].protocol)
    return {
        "protocol": protocol.name,
        "dataset_root": dataset_root,
        "units": "percent",
        "metrics": list(protocol.metrics),
        "trackers": [{
            "name": r.tracker,
            "results_dir": str(r.results_dir),
            "metrics": r.metrics,
            "sequences": len(r.sequences),
            "frames": r.frames,
            "curves": {spec.key: {"thresholds": [float(t) for t in spec.thresholds],
                                  "values": [float(v) for v in r.curves[spec.key]]}
                       for spec in protocol.curves},
            "per_sequence": r.per_sequence,
            "attributes": r.attributes,
        } for r in ranked(results, rank_metric(protocol.name))],
    }


def write_json(results: Sequence[EvalResult], out_dir: Path, dataset_root: str = "") -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{results[0].protocol}_results.json"
    path.write_text(json.dumps(to_json(results, dataset_root), indent=1) + "\n", encoding="utf-8")
    return path
