"""GPU speed check of the full-size CKD networks (run it through benchmarks/gpu_check.sh).

Rows per model (vitb_mce, vitb; seeded random weights: speed does not depend on the values):
  eager fp32            the paper's setting (PyTorch, batch 1, one template + search pair; TF32 off)
  eager fp16/bf16       torch.autocast
  cuda-graph fp32/fp16  the same forward captured once and replayed (no Python/launch overhead)
  compile fp32/fp16     torch.compile (default mode) where it works; skipped with the reason otherwise
  tracker fp32/fp16     the whole tracking loop on pre-rendered synthetic 640x512 frames (search
                        crop, normalisation, network, decode, box mapping): frames per second
Each row: p50/mean latency (ms, CUDA-synchronised per iteration), fps = 1000 / mean, peak GPU memory
of that row (MiB). Then benchmarks/gpu_check_trt.py (if present) adds TensorRT rows, or a row says
why not. Prints a table, writes JSON. `--device cpu --iters 2` is a dry run of the same code paths.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
PAPER_FPS = {"vitb_mce": 96.4, "vitb": 84.8}  # CKD paper, PyTorch, RTX 3090


def _sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(torch, device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(torch, device):
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def _time(fn, torch, device, warmup, iters):
    for _ in range(warmup):
        fn()
    _sync(torch, device)
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(torch, device)
        samples.append(time.perf_counter() - t0)
    ms = np.asarray(samples) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "mean_ms": float(ms.mean()), "fps": float(1e3 / ms.mean()),
            "n": int(ms.size)}


def _autocast(torch, device, dtype):
    if dtype is None:
        import contextlib

        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def network_rows(torch, model, cfg, device, args, deadline):
    from ckd_ros.model.export import example_inputs

    inputs = tuple(t.to(device) for t in example_inputs(cfg, seed=0))
    dtypes = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
    rows = []

    def row(mode, prec, fn=None, skip=None):
        r = {"model": cfg.name, "mode": mode, "precision": prec}
        if skip is None and time.monotonic() > deadline:
            skip = "time budget spent (--budget-s)"
        if skip is None:
            _peak_reset(torch, device)
            try:
                r.update(_time(fn, torch, device, args.warmup, args.iters))
                r["peak_mem_mib"] = _peak_mib(torch, device)
            except Exception as exc:  # noqa: BLE001 - a row that cannot run says why
                skip = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        if skip is not None:
            r["skipped"] = skip
        rows.append(r)
        _print_row(r)

    for prec, dt in dtypes.items():
        if prec == "fp16" and device.type != "cuda":
            row("eager", prec, skip="fp16 autocast needs CUDA (CPU fp16 is emulated)")
            continue

        def eager(dt=dt):
            with torch.inference_mode(), _autocast(torch, device, dt):
                return model(*inputs)
        row("eager", prec, eager)

    for prec in ("fp32", "fp16"):
        if device.type != "cuda":
            row("cuda-graph", prec, skip="needs a CUDA device")
            continue
        try:
            replay = _capture(torch, model, inputs, device, dtypes[prec])
            row("cuda-graph", prec, replay)
        except Exception as exc:  # noqa: BLE001
            row("cuda-graph", prec, skip=f"capture failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")

    for prec in ("fp32", "fp16"):
        if args.no_compile or (device.type == "cpu" and not args.compile):
            row("compile", prec, skip="not requested (CPU dry run; --compile forces it)" if device.type == "cpu"
                else "--no-compile")
            continue
        try:
            compiled = torch.compile(model)
            t0 = time.monotonic()
            with torch.inference_mode(), _autocast(torch, device, dtypes[prec]):
                compiled(*inputs)
            _sync(torch, device)
            compile_s = time.monotonic() - t0

            def run_compiled(prec=prec, compiled=compiled):
                with torch.inference_mode(), _autocast(torch, device, dtypes[prec]):
                    return compiled(*inputs)
            row("compile", prec, run_compiled)
            rows[-1]["compile_s"] = round(compile_s, 1)
        except Exception as exc:  # noqa: BLE001 - e.g. no Triton / no C++ compiler
            row("compile", prec, skip=f"torch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    return rows


def _capture(torch, model, inputs, device, dtype):
    static = tuple(t.clone() for t in inputs)
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream), torch.no_grad(), _autocast(torch, device, dtype):
        for _ in range(3):
            model(*static)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), _autocast(torch, device, dtype), torch.cuda.graph(graph):
        model(*static)
    return graph.replay


def tracker_rows(torch, model, cfg, device, args, frames, deadline):
    from ckd_ros.runtime.torch_backend import TorchBackend
    from ckd_ros.tracking.tracker import Tracker

    rows = []
    for prec in ("fp32", "fp16"):
        r = {"model": cfg.name, "mode": "tracker", "precision": prec}
        if prec == "fp16" and device.type != "cuda":
            r["skipped"] = "fp16 tracker backend needs CUDA"
        elif time.monotonic() > deadline:
            r["skipped"] = "time budget spent (--budget-s)"
        else:
            _peak_reset(torch, device)
            backend = TorchBackend(model, device=str(device), precision=prec)
            tracker = Tracker(backend)
            (rgb0, tir0, box0) = frames[0]
            tracker.initialize(rgb0, tir0, box0)
            for rgb, tir, _ in frames[1:1 + args.warmup]:
                tracker.track(rgb, tir)
            timed = frames[1 + args.warmup:]
            t0 = time.perf_counter()
            stages = []
            for rgb, tir, _ in timed:
                stages.append(tracker.track(rgb, tir).timing_ms)
            secs = time.perf_counter() - t0
            r.update({"fps": len(timed) / secs, "mean_ms": 1e3 * secs / len(timed), "n": len(timed),
                      "peak_mem_mib": _peak_mib(torch, device)})
            for stage in ("preprocess", "inference", "postprocess"):
                r[f"{stage}_ms"] = float(np.mean([s[stage] for s in stages]))
            backend.model = None
            model.float()  # TorchBackend casts the shared model in place for fp16
        rows.append(r)
        _print_row(r)
    return rows


def render_frames(n):
    """Pre-rendered 640x512 synthetic frames (RGB uint8, thermal stretched to 8 bit, GT box)."""
    from ckd_ros.frames.thermal import ThermalNormalizer
    from ckd_ros.synthetic import SyntheticScene

    scene = SyntheticScene(7, (640, 512), scenario="clean")
    norm = ThermalNormalizer("percentile")
    out = []
    for t in range(n):
        rgb, tir, box = scene.frame(t)
        out.append((rgb, norm(tir), box))
    return out


def trt_rows(args, json_dir):
    """Rows of benchmarks/gpu_check_trt.py (engineer `runtime`'s TensorRT check: parity of fp32,
    fp32 + CUDA graph and fp16 engines with ONNX Runtime, GIL ticker, close() during inference), or one
    row saying why it did not run. Its whole JSON is kept under "tensorrt" in ours."""
    script = REPO / "benchmarks" / "gpu_check_trt.py"
    skip = {"model": "-", "mode": "tensorrt", "precision": "-"}
    if not script.is_file():
        return [dict(skip, skipped=f"{script.name} not present")], None
    if importlib.util.find_spec("tensorrt") is None:
        return [dict(skip, skipped="TensorRT Python bindings not importable (import tensorrt)")], None
    out = json_dir / "gpu_check_trt.json"
    cmd = [sys.executable, str(script), "--device", "cpu" if args.device == "cpu" else "cuda",
           "--iters", str(args.iters), "--json", str(out)]
    print(f"running {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, check=False)
    if not out.is_file():
        return [dict(skip, skipped=f"{script.name} exited {proc.returncode} without JSON")], None
    data = json.loads(out.read_text())
    rows = []
    for v in data.get("variants", []) if isinstance(data, dict) else []:
        row = {"model": pathlib.Path(str(data.get("onnx", "model"))).stem, "mode": "tensorrt",
               "precision": str(v.get("check", "?")).replace("tensorrt ", "")}
        row.update({k: v[k] for k in v if k not in row})
        rows.append(row)
    if not rows:
        rows = [dict(skip, skipped=f"{script.name} ran no variant (exit {proc.returncode}; see its output)")]
    return rows, data


def _fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def _print_row(r):
    if "skipped" in r:
        print(f"{r['model']:<9} {r['mode']:<11} {r['precision']:<5} skipped: {r['skipped']}", flush=True)
    else:
        print(f"{r['model']:<9} {r['mode']:<11} {r['precision']:<5} {_fmt(r.get('p50_ms'), '9.2f')} "
              f"{_fmt(r.get('mean_ms'), '9.2f')} {_fmt(r.get('fps'), '8.1f')} {_fmt(r.get('peak_mem_mib'), '9.0f')}",
              flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (dry run)")
    ap.add_argument("--presets", default="vitb_mce,vitb")
    ap.add_argument("--iters", type=int, default=100, help="timed iterations per row (tracker: frames)")
    ap.add_argument("--warmup", type=int, default=None, help="default: min(20, iters) on CUDA, 1 on CPU")
    ap.add_argument("--json", default=str(REPO / "out" / "gpu_check.json"))
    ap.add_argument("--budget-s", type=float, default=420.0, help="rows after this many seconds are skipped")
    ap.add_argument("--compile", action="store_true", help="also torch.compile on CPU")
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args(argv)
    if args.iters < 1:
        ap.error("--iters must be >= 1")
    import torch

    if args.warmup is None:
        args.warmup = 1 if args.device == "cpu" else min(20, args.iters)

    from ckd_ros.model import CKDConfig, CKDStudent
    from ckd_ros.runtime.bench import machine_description

    t_start = time.monotonic()
    deadline = t_start + args.budget_s
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: --device {args.device} but torch sees no CUDA GPU (torch {torch.__version__}); "
              "use --device cpu for a dry run", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (the paper's setting)
    torch.backends.cudnn.allow_tf32 = False
    machine = machine_description()
    if device.type == "cuda":
        machine["gpu_name"] = torch.cuda.get_device_name(device)
    print(f"machine: {machine['cpu']} | {machine.get('gpu_name', machine['gpu'])} | torch {torch.__version__}",
          flush=True)
    print(f"{'model':<9} {'mode':<11} {'prec':<5} {'p50 ms':>9} {'mean ms':>9} {'fps':>8} {'peak MiB':>9}", flush=True)
    frames = render_frames(args.iters + args.warmup + 1)
    rows = []
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        torch.manual_seed(0)
        cfg = CKDConfig.preset(preset)
        model = CKDStudent(cfg).eval().to(device)
        rows += network_rows(torch, model, cfg, device, args, deadline)
        rows += tracker_rows(torch, model, cfg, device, args, frames, deadline)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    json_path = pathlib.Path(args.json)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    trt, trt_json = trt_rows(args, json_path.parent)
    for r in trt:
        rows.append(r)
        _print_row(r)
    for r in rows:
        if r.get("mode") == "eager" and r.get("precision") == "fp32" and r.get("model") in PAPER_FPS:
            r["paper_fps"] = PAPER_FPS[r["model"]]
    result = {"machine": machine, "device": str(device), "iters": args.iters, "warmup": args.warmup,
              "seconds": round(time.monotonic() - t_start, 1), "results": rows, "tensorrt": trt_json,
              "loadavg_1m_after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"total {result['seconds']:.0f} s; JSON {json_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
