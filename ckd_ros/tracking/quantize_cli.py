"""`ckd quantize`: calibrate and quantize a `ckd export` ONNX file to INT8 (the command and its data).

The quantization itself (QDQ/dynamic, what stays FP32, the error against FP32) is
`ckd_ros.runtime.quantize`; this module takes the calibration data the way the tracker sees frames:
it runs the offline tracker (FP32 model) over the synthetic scenes or a user's sequence, with the
frame layer's one thermal conversion (`ckd_ros.frames.thermal.default_normalizer`), and records the
network inputs through `runtime.quantize.InputRecorder`.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

from ckd_ros.errors import InputError
from ckd_ros.runtime.base import Backend
from ckd_ros.runtime.quantize import (
    CALIB_SEED_BASE,
    METHODS,
    SYNTHETIC_SCENARIOS,
    InputRecorder,
    quantize_onnx,
    split_samples,
)


def record_synthetic(backend: Backend, *, scenarios: Sequence[str] = SYNTHETIC_SCENARIOS, frames: int = 24,
                     seed_base: int = CALIB_SEED_BASE, size=(640, 512)) -> List[Dict[str, np.ndarray]]:
    """Network inputs of the tracker (with `backend`) over one synthetic scene per scenario.

    Each scene: frame 0 initialises on the ground-truth box, frames 1..frames-1 are tracked; thermal
    is the 16-bit radiometric image through the one thermal conversion (frames.thermal default), as in the node.
    """
    from ckd_ros.frames.thermal import default_normalizer
    from ckd_ros.synthetic import SyntheticScene

    rec = InputRecorder(backend)
    for k, scenario in enumerate(scenarios):
        scene = SyntheticScene(seed_base + k, size, scenario=scenario, period=max(frames, 2))
        pairs = ((rgb, tir) for rgb, tir, _ in (scene.frame(t) for t in range(frames)))
        _track(rec, pairs, scene.frame(0)[2], default_normalizer())
    return rec.samples


def record_sequence(backend: Backend, pairs, box, *, frames: int = 200,
                    thermal_norm: Optional[str] = None) -> List[Dict[str, np.ndarray]]:
    """Network inputs of the tracker over (rgb, thermal as stored[, stamp]) pairs from `box` (x, y, w, h),
    thermal through the one default conversion (or `thermal_norm`); at most `frames` pairs."""
    from ckd_ros.frames.thermal import ThermalNormalizer, default_normalizer

    rec = InputRecorder(backend)
    norm = ThermalNormalizer(thermal_norm) if thermal_norm else default_normalizer()
    taken = []
    for idx, pair in enumerate(pairs):
        if idx >= frames:
            break
        taken.append((pair[0], pair[1]))
    if not taken:
        raise InputError("the calibration source has no frames")
    _track(rec, taken, box, norm)
    return rec.samples


def _track(rec: InputRecorder, pairs, box, normalizer) -> None:
    from ckd_ros.tracking.tracker import Tracker

    tracker = Tracker(rec)
    for idx, (rgb, tir) in enumerate(pairs):
        tir8 = normalizer(tir)
        if idx == 0:
            tracker.initialize(rgb, tir8, box)
        else:
            tracker.track(rgb, tir8)


# ---- command line --------------------------------------------------------------------------------
def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_quantize(args) -> int:
    from ckd_ros.runtime.factory import open_backend

    if not os.path.isfile(args.onnx):
        raise InputError(f"ONNX file not found: {args.onnx}")
    out = args.output or str(pathlib.Path(args.onnx).with_name(pathlib.Path(args.onnx).stem + "_int8.onnx"))
    _check_output(pathlib.Path(out))
    source = None
    if args.calib == "sequence":  # opened first: a bad input is refused before the backend loads
        from ckd_ros.tracking.cli import open_input

        source = open_input(args)
    samples, calib_desc = [], None
    if args.method == "static" or args.calib != "none":
        backend = open_backend("onnxruntime", onnx=args.onnx, device="cpu", threads=args.threads, log=_log)
        try:
            samples, calib_desc = _calibration_samples(args, backend, source)
        finally:
            backend.close()
        _log(f"calibration: {len(samples)} tracker inputs from {calib_desc['source']}")
    calib, held = split_samples(samples) if samples else ([], [])
    meta = quantize_onnx(args.onnx, out, method=args.method, samples=calib, eval_samples=held,
                         calibration=calib_desc, exclude=_csv(args.exclude), int8_head=args.int8_head,
                         threads=args.threads, log=_log)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(meta["quantization"], indent=1, sort_keys=True))
    print(out)
    return 0


def _check_output(out: pathlib.Path) -> None:
    """Refuse an unwritable output in one line before minutes of calibration (InputError)."""
    parent = out.parent if str(out.parent) else pathlib.Path(".")
    if not parent.is_dir() or not os.access(str(parent), os.W_OK):
        raise InputError(f"cannot write {out}: {parent} is not a writable folder; choose another --output")


def _calibration_samples(args, backend, source=None):
    if args.calib == "synthetic":
        scenarios = _csv(args.scenarios) or list(SYNTHETIC_SCENARIOS)
        samples = record_synthetic(backend, scenarios=scenarios, frames=args.frames)
        return samples, {"source": "synthetic", "scenarios": scenarios, "frames_per_scene": args.frames,
                         "seeds": f"{CALIB_SEED_BASE}..{CALIB_SEED_BASE + len(scenarios) - 1}"}
    if args.calib == "sequence":
        samples = record_sequence(backend, source.frames, source.box, frames=args.frames)
        return samples, {"source": f"sequence {source.name}", "input": dict(source.description),
                         "init_box": [float(v) for v in source.box], "frames": args.frames}
    raise InputError("static quantization needs calibration data: --calib synthetic or --calib sequence")


def _csv(text: Optional[str]) -> List[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "quantize", help="INT8 ONNX from a `ckd export` file (static QDQ, or dynamic)",
        description="Quantize an exported FP32 ONNX model to INT8. Static (default): QDQ, per-channel weights, "
                    "activations calibrated on the crops the tracker takes with the FP32 model.")
    p.add_argument("onnx", help="FP32 ONNX file from `ckd export`")
    p.add_argument("-o", "--output", help="INT8 ONNX to write (default <stem>_int8.onnx; sidecar <stem>.json)")
    p.add_argument("--method", choices=METHODS, default="static",
                   help="static: calibrated QDQ (ONNX Runtime + TensorRT); dynamic: MatMul/Gemm, no calibration")
    p.add_argument("--calib", choices=("synthetic", "sequence", "none"), default="synthetic",
                   help="calibration source: the synthetic scenes (default) or the input options below (sequence, "
                   "--rgb/--thermal, --bag)")
    p.add_argument("--scenarios", help="synthetic scenarios, comma-separated (default: all eight)")
    p.add_argument("--frames", type=int, default=24, help="frames per synthetic scene / of the sequence")
    from ckd_ros.tracking.cli import add_input_arguments

    add_input_arguments(p)  # --calib sequence: the same inputs as `ckd track` (folders, videos, bags)
    p.add_argument("--exclude", help="further node names to keep FP32, comma-separated")
    p.add_argument("--int8-head", action="store_true", help="quantize the box head too (default FP32: measured "
                   "half the map error at a few %% of the FLOPs)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads")
    p.add_argument("--json", help="also write the quantization record (errors included) here")
    p.set_defaults(func=cmd_quantize)
