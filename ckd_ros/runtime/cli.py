"""`ckd export`, `ckd build-engine`, `ckd latency` (was `ckd bench`): thin argument handling over the runtime."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ckd_ros.errors import CKDError
from ckd_ros.model.config import PRESETS
from ckd_ros.model.onnx_meta import EXPORT_MODES
from ckd_ros.runtime.options import KINDS, PRECISIONS


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _config_arg(args):
    """CKDConfig from --preset or --config (a JSON file or inline JSON), or None."""
    from ckd_ros.model.config import CKDConfig

    preset, config = getattr(args, "preset", None), getattr(args, "config", None)
    if preset and config:
        raise CKDError("give either --preset or --config, not both")
    if preset:
        return CKDConfig.preset(preset)
    if config:
        text = config
        if os.path.isfile(config):
            with open(config, encoding="utf-8") as f:
                text = f.read()
        try:
            return CKDConfig.from_dict(json.loads(text))
        except ValueError as exc:
            raise CKDError(f"--config is neither a JSON file nor JSON: {exc}") from None
    return None


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help=f"model preset ({', '.join(PRESETS)})")
    p.add_argument("--config", help="CKDConfig as a JSON file or inline JSON")


def cmd_export(args) -> int:
    from ckd_ros.hashing import file_sha256
    from ckd_ros.model import load_checkpoint
    from ckd_ros.model.export import export_onnx, verify_onnx

    if not os.path.isfile(args.checkpoint):
        raise CKDError(f"checkpoint not found: {args.checkpoint}")
    model = load_checkpoint(args.checkpoint, _config_arg(args))
    export_onnx(model, args.output, mode=args.mode, opset=args.opset, debug_outputs=args.debug_outputs,
                checkpoint=args.checkpoint, checkpoint_sha256=file_sha256(args.checkpoint), log=_log)
    if args.verify:
        errs = verify_onnx(model, args.output, log=_log)
        if max(errs.values()) > args.tolerance:
            raise CKDError(f"exported graph differs from PyTorch by {max(errs.values()):.2e} "
                           f"(> {args.tolerance:g})")
    print(args.output)
    return 0


def cmd_build_engine(args) -> int:
    from ckd_ros.runtime.cache import ArtifactCache
    from ckd_ros.runtime.trt_engine import TensorRTEngine

    if (args.onnx is None) == (args.checkpoint is None):
        raise CKDError("give exactly one of --onnx or --checkpoint")
    for label, path in (("--onnx", args.onnx), ("--checkpoint", args.checkpoint)):
        if path is not None and not os.path.isfile(path):
            raise CKDError(f"{label} file not found: {path}")
    # TensorRT-RTX builds ahead of time without a GPU (CI's parser check); TensorRT proper needs one
    rtx = (args.trt_module or "").startswith("tensorrt_rtx")
    if rtx and not args.build_only:
        raise CKDError("tensorrt_rtx engines are built only here (CI parser check); add --build-only")
    precision = args.precision or ("fp32" if rtx else "fp16")
    engine = TensorRTEngine(args.onnx, ArtifactCache(args.cache_dir, log=_log), checkpoint=args.checkpoint,
                            config=_config_arg(args), precision=precision, workspace_mb=args.workspace_mb,
                            trt_module=args.trt_module, log=_log, require_gpu=not rtx)
    path, action = engine.ensure()
    _log(f"engine {path}: {action}")
    if not args.build_only:
        backend = engine.open_backend()
        try:
            from ckd_ros.runtime.bench import time_backend

            stats = time_backend(backend, backend.config, warmup=2, iters=10)
            _log(f"smoke run: p50 {stats['p50_ms']:.2f} ms, {stats['fps']:.1f} fps")
        finally:
            backend.close()
    print(path)
    return 0


def _csv(text: str):
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_latency(args) -> int:
    from ckd_ros.runtime.bench import format_table, machine_description, run_bench

    if args.iters < 1 or args.warmup < 0:
        raise CKDError("--iters must be >= 1 and --warmup >= 0")
    kinds = _csv(args.backend)
    if kinds == ["all"]:
        kinds = [k for k in KINDS if k != "auto"]
    machine = machine_description()
    rows = run_bench(_csv(args.preset), kinds, _csv(args.precision), checkpoint=args.checkpoint,
                     warmup=args.warmup, iters=args.iters, threads=args.threads, cache_dir=args.cache_dir,
                     cuda_graph=args.cuda_graph, log=_log)
    if hasattr(os, "getloadavg"):
        machine["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    print(format_table(rows, machine))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "warmup": args.warmup, "results": rows}, f, indent=1)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a checkpoint to a static-shape ONNX file")
    p.add_argument("checkpoint", help="official .pth.tar, state dict or converted .safetensors")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write (metadata goes to <stem>.json)")
    _add_model_args(p)
    p.add_argument("--mode", choices=tuple(EXPORT_MODES),
                   help="; ".join(f"{m.name}: {m.help}" for m in EXPORT_MODES.values()) + " (default standard; "
                   "build-engine picks the mode its TensorRT needs by itself)")
    p.add_argument("--opset", type=int, help="ONNX opset (17: standard; 16: trt85, for TensorRT 8.5 / JetPack 5)")
    p.add_argument("--debug-outputs", action="store_true", help="add kept_idx_<j> outputs (testing only)")
    p.add_argument("--verify", action="store_true", help="compare ONNX Runtime with PyTorch after export")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs map error accepted by --verify")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("build-engine", help="build (or find cached) the TensorRT engine")
    src = p.add_argument_group("model (one of)")
    src.add_argument("--onnx", help="ONNX file from `ckd export`")
    src.add_argument("--checkpoint", help="checkpoint (exported to ONNX in the cache dir first)")
    _add_model_args(p)
    p.add_argument("--precision", choices=PRECISIONS,
                   help="default fp16 (TensorRT), fp32 (tensorrt_rtx: strongly typed, no FP16 flag); int8 needs "
                   "the QDQ ONNX file from `ckd quantize`")
    p.add_argument("--workspace-mb", type=int, default=2048)
    p.add_argument("--cache-dir", help="engine cache (default: the user cache dir, or $CKD_CACHE_DIR)")
    p.add_argument("--trt-module", help="TensorRT Python module (default tensorrt; tensorrt_rtx for CI)")
    p.add_argument("--build-only", action="store_true", help="build/cache the engine and exit (install scripts)")
    p.set_defaults(func=cmd_build_engine)

    p = subparsers.add_parser("latency", help="network latency per backend and precision (was `ckd bench`)",
                              description="Time the network alone (random inputs, batch 1) per backend and "
                                          "precision. Not `ckd benchmark`, which evaluates a tracker on a dataset.")
    p.add_argument("--preset", default="vitb,vitb_mce", help="comma-separated presets (default: vitb,vitb_mce)")
    p.add_argument("--checkpoint", help="weights to use (default: seeded random weights)")
    p.add_argument("--backend", default="torch,onnxruntime,tensorrt", help="comma-separated, or 'all'")
    p.add_argument("--precision", default="fp32",
                   help=f"comma-separated: {','.join(PRECISIONS)} (int8: the static QDQ file `ckd quantize` writes)")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, help="CPU threads for torch/onnxruntime (default: all)")
    p.add_argument("--cuda-graph", action="store_true", help="TensorRT: replay the frame as a CUDA graph")
    p.add_argument("--cache-dir", help="ONNX/engine cache dir")
    p.add_argument("--json", help="also write the results and machine description as JSON")
    p.set_defaults(func=cmd_latency)
