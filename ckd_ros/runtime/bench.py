"""Network latency per backend and precision: warm-up, synchronised timing, p50/p90/p99 and fps.

What is timed is `infer_search()` with the template already set (the per-frame cost in tracking):
upload of two search crops, the forward, and the maps back on the host. Every backend returns host
numpy arrays, so a call returns only after the GPU has finished (that is the synchronisation).
fps = 1 / mean latency.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from ckd_ros.errors import CKDError


def latency_stats(samples_s: Sequence[float]) -> Dict[str, float]:
    if not samples_s:
        raise ValueError("no samples")
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {"n": int(ms.size), "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "fps": float(1e3 / ms.mean())}


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> Dict[str, object]:
    from ckd_ros.runtime.gpu import probe_gpu

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gib = float("nan")
    gpu = probe_gpu()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpus_usable": usable,
        "memory_gib": round(mem_gib, 1),
        "gpu": gpu.describe(),
        # other processes on a shared machine skew CPU timings: record how busy it was
        "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "l4t": gpu.l4t_release,
        "versions": {d: _version(d) for d in ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt",
                                             "tensorrt-rtx-cu12", "numpy")},
    }


def random_inputs(config, seed: int = 0):
    rng = np.random.default_rng(seed)
    t, s = config.template_size, config.search_size
    z = [rng.standard_normal((1, 3, t, t), dtype=np.float32) for _ in range(2)]
    x = [rng.standard_normal((1, 3, s, s), dtype=np.float32) for _ in range(2)]
    return z, x


def time_backend(backend, config, *, warmup: int = 2, iters: int = 10, seed: int = 0) -> Dict[str, float]:
    (z_rgb, z_tir), (x_rgb, x_tir) = random_inputs(config, seed)
    backend.set_template(z_rgb, z_tir)
    for _ in range(warmup):
        backend.infer_search(x_rgb, x_tir)
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        backend.infer_search(x_rgb, x_tir)
        samples.append(time.perf_counter() - t0)
    return latency_stats(samples)


def run_bench(presets: List[str], kinds: List[str], precisions: List[str], *, checkpoint=None,
              warmup: int = 2, iters: int = 10, threads: Optional[int] = None, cache_dir=None,
              cuda_graph: bool = False, log=print) -> List[Dict[str, object]]:
    """One row per (model, backend, precision); rows that cannot run here say why instead."""
    import torch

    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _bench_rows(presets, kinds, precisions, checkpoint, warmup, iters, threads, cache_dir,
                           cuda_graph, log)
    finally:
        torch.set_num_threads(saved_threads)


def _bench_rows(presets, kinds, precisions, checkpoint, warmup, iters, threads, cache_dir, cuda_graph, log):
    from ckd_ros.runtime.factory import open_backend

    rows = []
    for preset in presets:
        model, cfg = _bench_model(preset, checkpoint)
        for kind in kinds:
            for precision in precisions:
                row = {"model": cfg.name, "backend": kind, "precision": precision}
                try:
                    source = {"model": model}
                    if precision == "int8":  # the static QDQ file `ckd quantize` writes, cached
                        source = {"onnx": _int8_onnx(kind, model, cfg, cache_dir, log)}
                    backend = open_backend(kind, config=cfg, precision=precision, cache_dir=cache_dir,
                                           threads=threads, cuda_graph=cuda_graph, log=log, **source)
                except CKDError as exc:
                    row["skipped"] = str(exc)
                    log(f"bench {cfg.name} {kind} {precision}: skipped ({exc})")
                    rows.append(row)
                    continue
                try:
                    row["describe"] = backend.describe()
                    row.update(time_backend(backend, cfg, warmup=warmup, iters=iters))
                finally:
                    backend.close()
                log(f"bench {cfg.name} {kind} {precision}: p50 {row['p50_ms']:.1f} ms, p90 {row['p90_ms']:.1f} ms, "
                    f"p99 {row['p99_ms']:.1f} ms, {row['fps']:.2f} fps")
                rows.append(row)
    return rows


def _int8_onnx(kind: str, model, cfg, cache_dir, log):
    """INT8 QDQ ONNX of `model` (exported, then quantized with random-input calibration; cached)."""
    if kind == "torch":
        raise CKDError("int8 runs on onnxruntime/tensorrt (an ONNX file from `ckd quantize`), not torch")
    from ckd_ros.runtime.cache import ArtifactCache
    from ckd_ros.runtime.onnx_cache import ensure_onnx
    from ckd_ros.runtime.quantize import ensure_int8

    cache = ArtifactCache(cache_dir)
    fp32, _ = ensure_onnx(cache, model=model, config=cfg, log=log)
    return ensure_int8(cache, fp32, cfg, log=log)


def _bench_model(preset: str, checkpoint):
    """A model to time: the checkpoint's weights, else seeded random weights (speed does not depend
    on the values)."""
    import torch

    from ckd_ros.model import CKDConfig, CKDStudent, load_checkpoint

    cfg = CKDConfig.preset(preset)
    if checkpoint is not None:
        return load_checkpoint(checkpoint, cfg), cfg
    torch.manual_seed(0)
    return CKDStudent(cfg).eval(), cfg


def format_table(rows: List[Dict[str, object]], machine: Dict[str, object]) -> str:
    lines = [f"machine: {machine['cpu']} ({machine['cpus_usable']} usable CPUs, {machine['memory_gib']} GiB, "
             f"load {machine.get('loadavg_1m')}), {machine['gpu']}; {machine['platform']}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
             "",
             f"{'model':<10} {'backend':<12} {'prec':<5} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'fps':>7} {'n':>4}"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['model']:<10} {r['backend']:<12} {r['precision']:<5} skipped: {r['skipped']}")
        else:
            lines.append(f"{r['model']:<10} {r['backend']:<12} {r['precision']:<5} {r['p50_ms']:>9.1f} "
                         f"{r['p90_ms']:>9.1f} {r['p99_ms']:>9.1f} {r['fps']:>7.2f} {r['n']:>4}")
    return "\n".join(lines)
