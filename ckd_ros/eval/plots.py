"""Precision / success plots as the toolkits draw them: one curve per tracker, legend ranked by the
plot's score (precision at the protocol's pixel threshold, success area). matplotlib's object API with
the Agg canvas: no pyplot state, no display needed."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from ckd_ros.eval.evaluate import EvalResult
from ckd_ros.eval.protocols import get_protocol
from ckd_ros.eval.report import ranked

_STYLES = ("-", "--", "-.", ":")


def save_plots(results: Sequence[EvalResult], out_dir: Path, dataset_title: str = "") -> List[Path]:
    """One PNG per curve type (`<protocol>_precision.png`, `_success.png`, LasHeR `_norm_precision.png`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol = get_protocol(results[0].protocol)
    title_suffix = f" on {dataset_title or protocol.title}"
    written = []
    for spec in protocol.curves:
        fig = Figure(figsize=(7.5, 5.5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for i, r in enumerate(ranked(results, spec.metric)):
            label = f"[{r.metrics[spec.metric] / 100:.3f}] {r.tracker}"
            ax.plot(spec.thresholds, r.curves[spec.key], linestyle=_STYLES[(i // 10) % len(_STYLES)],
                    linewidth=2.5, label=label)
        ax.set_xlim(float(spec.thresholds[0]), float(spec.thresholds[-1]))
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel(spec.xlabel)
        ax.set_ylabel(spec.ylabel)
        ax.set_title(f"{spec.title}{title_suffix} ({spec.metric})")
        ax.grid(True, linestyle=":", color="0.6")
        loc = "lower left" if spec.key == "success" else "lower right"
        ax.legend(loc=loc, fontsize=9, frameon=True)
        fig.tight_layout()
        path = out_dir / f"{protocol.name}_{spec.key}.png"
        fig.savefig(path)
        written.append(path)
    return written
