"""`ckd eval` (score result folders with the official protocols) and `ckd benchmark` (run our tracker
over a dataset, then score it)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from ckd_ros.errors import CKDError
from ckd_ros.frames.datasets import DATASETS
from ckd_ros.runtime.options import KINDS, PRECISIONS, PRESETS

DEFAULT_OUT = Path("eval_results")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate tracker result folders on LasHeR, RGBT234, RGBT210, GTOT or VTUAV",
        description="Score result folders exactly as the official toolkits do (see docs/eval.md). Prints a "
                    "ranked table and writes CSV, JSON and precision/success plots (PNG) to --out.")
    _dataset_args(p)
    p.add_argument("--results", type=Path, nargs="+", required=True, metavar="DIR",
                   help="one folder per tracker holding <seq>.txt or <Tracker>_<seq>.txt")
    p.add_argument("--json", action="store_true",
                   help="print the metrics of the (single) results folder as one JSON object on stdout "
                        "(files are then written only with an explicit --out)")
    _output_args(p)
    p.set_defaults(func=run_eval)

    b = subparsers.add_parser(
        "benchmark", help="run the CKD tracker over a benchmark dataset, then evaluate it",
        description="Track every sequence (resumable: finished sequences are skipped), write <seq>.txt and "
                    "<seq>_time.txt in the CKD format and provenance.json (model sha256, backend, precision, "
                    "tracker parameters, version, status), report per-sequence fps, then evaluate. A results "
                    "folder written by another model or setting is refused (use a new one or --overwrite); "
                    "Ctrl-C/SIGTERM keeps the finished sequences (status partial).")
    _dataset_args(b)
    b.add_argument("--results", type=Path, default=None, metavar="DIR",
                   help="folder for the result files (default: benchmark_results/<dataset>/<name>)")
    b.add_argument("--name", default="CKD", help="tracker name in tables and plots (default CKD)")
    b.add_argument("--workers", type=int, default=1, metavar="N",
                   help="tracker processes; each opens its own backend (default 1)")
    b.add_argument("--compare", type=Path, nargs="*", default=[], metavar="DIR",
                   help="other trackers' result folders to rank against")
    b.add_argument("--no-eval", action="store_true", help="only track, do not evaluate")
    b.add_argument("--overwrite", action="store_true",
                   help="remove the results in --results first (needed when they came from another model, "
                        "backend, precision or tracker setting)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    _output_args(b)
    be = b.add_argument_group("backend")
    be.add_argument("--backend", default="auto", choices=KINDS)
    be.add_argument("--checkpoint", type=Path, default=None, help="official .pth.tar or converted file")
    be.add_argument("--onnx", type=Path, default=None, help="exported ONNX model")
    be.add_argument("--preset", default=None, help=f"model preset ({', '.join(PRESETS)})")
    be.add_argument("--precision", default="fp32", choices=PRECISIONS)
    be.add_argument("--device", default=None, help="e.g. cuda:0 or cpu")
    be.add_argument("--threads", type=int, default=None, metavar="N",
                    help="ONNX Runtime intra-op threads per tracker process")
    b.set_defaults(func=run_benchmark_cmd)


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, type=str.lower, choices=list(DATASETS),
                   help="benchmark, which also selects its protocol")
    p.add_argument("--root", type=Path, required=True, metavar="DIR",
                   help="dataset folder (or the annotation-only toolkit layout; see docs/eval.md)")
    p.add_argument("--sequences", default=None, metavar="FILE|NAMES",
                   help="evaluate only these sequences: a list file or comma-separated names "
                        "(default: the dataset's list file, else every sequence folder)")


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help=f"folder for CSV/JSON/PNG files (default: {DEFAULT_OUT}/<dataset>)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def _sequences(spec: Optional[str]):
    if spec is None:
        return None
    if Path(spec).expanduser().is_file():
        return Path(spec).expanduser()
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise CKDError(f"--sequences {spec!r} names no sequence; give a list file or comma-separated names")
    return names


def _evaluate_all(dataset, dirs: List[Path]) -> list:
    from ckd_ros.eval.evaluate import evaluate_tracker

    results = [evaluate_tracker(dataset, d) for d in dirs]
    seen = {}
    for r in results:  # two folders with the same tracker name: tell them apart by their parent
        seen.setdefault(r.tracker, []).append(r)
    for same in seen.values():
        if len(same) > 1:
            for r in same:
                r.tracker = f"{r.tracker} ({r.results_dir.resolve().parent.name})"
    return results


def _write_outputs(results, out_dir: Path, dataset, plots: bool, quiet: bool = False) -> None:
    from ckd_ros.eval.report import write_csv, write_json

    files = write_csv(results, out_dir) + [write_json(results, out_dir, str(dataset.root))]
    if plots:
        from ckd_ros.eval.plots import save_plots

        files += save_plots(results, out_dir)
    if not quiet:
        print(f"wrote {', '.join(str(f) for f in files)}", file=sys.stderr)


def run_eval(args) -> int:
    from ckd_ros.eval.report import format_table
    from ckd_ros.frames.datasets import open_dataset

    if args.json and len(args.results) != 1:
        raise CKDError(f"--json prints one results folder's metrics; got {len(args.results)} folders")
    dataset = open_dataset(args.dataset, args.root, _sequences(args.sequences))
    results = _evaluate_all(dataset, args.results)
    if args.json:
        print(json.dumps(results[0].metrics))
        if args.out is not None:
            _write_outputs(results, args.out, dataset, not args.no_plots, quiet=True)
        return 0
    print(format_table(results))
    _write_outputs(results, args.out or DEFAULT_OUT / dataset.protocol, dataset, not args.no_plots)
    return 0


def run_benchmark_cmd(args) -> int:
    from ckd_ros.eval.runner import TrackerSpec, run_benchmark
    from ckd_ros.frames.datasets import open_dataset

    if args.workers < 1:
        raise CKDError(f"--workers must be at least 1, got {args.workers}")
    for flag, path in (("--checkpoint", args.checkpoint), ("--onnx", args.onnx)):
        if path is not None and not path.is_file():
            raise CKDError(f"{flag} {path} does not exist")
    dataset = open_dataset(args.dataset, args.root, _sequences(args.sequences))
    results_dir = args.results or Path("benchmark_results") / dataset.protocol / args.name
    spec = TrackerSpec(backend=args.backend, checkpoint=_str(args.checkpoint), onnx=_str(args.onnx),
                       preset=args.preset, precision=args.precision, device=args.device, threads=args.threads)
    try:
        runs = run_benchmark(dataset, results_dir, spec, workers=args.workers, progress=not args.quiet,
                             overwrite=args.overwrite)
    except KeyboardInterrupt as exc:  # run_benchmark said what was kept; no evaluation of a partial run
        return getattr(exc, "exit_code", 130)
    out_dir = args.out or DEFAULT_OUT / dataset.protocol
    _write_fps(runs, out_dir / f"{args.name}_fps.csv")
    if args.no_eval:
        return 0
    from ckd_ros.eval.evaluate import evaluate_tracker
    from ckd_ros.eval.report import format_table

    ours = evaluate_tracker(dataset, results_dir, tracker=args.name)
    results = [ours] + _evaluate_all(dataset, list(args.compare))
    print(format_table(results))
    _write_outputs(results, out_dir, dataset, not args.no_plots)
    return 0


def _write_fps(runs, path: Path) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["sequence", "frames", "seconds", "fps", "from_earlier_run"])
        for r in runs:
            w.writerow([r.name, r.frames, f"{r.seconds:.4f}", f"{r.fps:.2f}", int(r.skipped)])
    frames = sum(r.frames for r in runs)
    seconds = sum(r.seconds for r in runs)
    mean_seq = sum(r.fps for r in runs) / max(len(runs), 1)
    print(f"speed: {frames / seconds if seconds else float('nan'):.1f} fps over {frames} frames "
          f"(mean of per-sequence fps {mean_seq:.1f}); per sequence in {path}", file=sys.stderr)


def _str(path: Optional[Path]) -> Optional[str]:
    return None if path is None else str(path)
