"""TensorRT part of the GPU check (issue 17): run where TensorRT is importable, skip with the reason
elsewhere. benchmarks/gpu_check.sh calls it; it also runs alone:

    .venv/bin/python benchmarks/gpu_check_trt.py [--device cuda|cpu] [--onnx M.onnx] [--iters 50] [--json out.json]

On a GPU machine, with the model (default: engines/demo_small.onnx, in the repo, no torch needed):
1. builds and runs it via open_backend("tensorrt") in fp32, fp32 + CUDA graph and fp16, and compares
   each with ONNX Runtime (CPU) on the same inputs: max map error, argmax cell, box IoU
   (fp32 expects < 1e-3 and the same cell; fp16 is judged by IoU > 0.9);
2. measures how long other Python threads are blocked while `infer_search` waits for the GPU (a
   1 ms ticker thread: its longest gap; with a GIL-holding wait it equals the inference time);
3. calls close() from a second thread while an inference runs (must wait for it, no crash);
4. prints the ONNX Runtime providers really used (get_providers() after session creation) for
   device auto and cuda, and the TensorRT requirement check (GPU, bindings, cuda-python).
With `--device cpu` (CI dry run) or when TensorRT cannot run, each check prints its skip reason and
the script exits 0. Prints a table; `--json` also writes the rows. Nothing here asserts speed.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ckd_ros.boxes import iou  # noqa: E402
from ckd_ros.errors import CKDError  # noqa: E402
from ckd_ros.model.io_spec import INPUT_NAMES, OUTPUT_NAMES, io_shapes  # noqa: E402
from ckd_ros.tracking.postprocess import decode  # noqa: E402

VARIANTS = (("fp32", False), ("fp32", True), ("fp16", False))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def inputs(config, seed: int):
    rng = np.random.default_rng(seed)
    shapes = io_shapes(config)
    return [rng.standard_normal(shapes[n]).astype(np.float32) for n in INPUT_NAMES]


def xywh(maps) -> np.ndarray:
    (cx, cy, w, h), _, idx = decode(maps["score_map"], maps["size_map"], maps["offset_map"])
    return np.array([[cx - w / 2, cy - h / 2, w, h]]), idx


def compare(got, ref) -> dict:
    err = max(float(np.abs(got[n] - ref[n]).max()) for n in OUTPUT_NAMES)
    (bg, cg), (br, cr) = xywh(got), xywh(ref)
    return {"max_err": err, "same_cell": cg == cr, "iou": float(iou(bg, br)[0])}


def gil_block(backend, frame, seconds: float = 1.0) -> dict:
    """Longest gap of a 1 ms ticker thread while infer_search runs back to back for `seconds`."""
    backend.set_template(frame[0], frame[1])
    ticks, stop = [], threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker, daemon=True)
    t.start()
    time.sleep(0.02)
    t0, n, infer_s = time.perf_counter(), 0, []
    while time.perf_counter() - t0 < seconds:
        a = time.perf_counter()
        backend.infer_search(frame[2], frame[3])
        infer_s.append(time.perf_counter() - a)
        n += 1
    stop.set()
    t.join()
    gaps = np.diff([x for x in ticks if x >= t0])
    return {"inferences": n, "infer_p50_ms": 1e3 * float(np.median(infer_s)),
            "ticker_max_gap_ms": 1e3 * float(gaps.max()) if len(gaps) else float("nan"),
            "ticker_p50_gap_ms": 1e3 * float(np.median(gaps)) if len(gaps) else float("nan")}


def close_during_inference(backend, frame) -> dict:
    """close() from a second thread while the first runs inferences: it must wait, not crash."""
    backend.set_template(frame[0], frame[1])
    errors, done = [], threading.Event()

    def worker():
        try:
            while not done.is_set():
                backend.infer_search(frame[2], frame[3])
        except CKDError as exc:  # "backend is closed" after close() won: expected
            errors.append(str(exc))
            done.set()

    w = threading.Thread(target=worker)
    w.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    closer = threading.Thread(target=backend.close)
    closer.start()
    closer.join(30)
    done.set()
    w.join(30)
    return {"close_s": time.perf_counter() - t0, "closer_finished": not closer.is_alive(),
            "worker_finished": not w.is_alive(), "worker_error": errors[0] if errors else ""}


def ort_providers(onnx, config) -> list:
    from ckd_ros.runtime import open_backend

    rows = []
    for device in ("auto", "cuda"):
        try:
            b = open_backend("onnxruntime", onnx=onnx, device=device, log=lambda m: None)
        except CKDError as exc:
            rows.append({"device": device, "skipped": str(exc)})
            continue
        rows.append({"device": device, "providers": b.providers, "reason": b.reason})
        b.close()
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: dry run, print skip reasons")
    ap.add_argument("--onnx", default=str(REPO / "engines" / "demo_small.onnx"), help="model to check")
    ap.add_argument("--iters", type=int, default=20, help="parity frames per variant")
    ap.add_argument("--cache-dir", default=None, help="engine cache (default: the user cache dir)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)

    from ckd_ros.model.config_source import resolve_config
    from ckd_ros.runtime import open_backend
    from ckd_ros.runtime.gpu import probe_gpu, tensorrt_problems

    gpu = probe_gpu()
    results = {"gpu": gpu.describe(), "onnx": args.onnx, "variants": [], "skipped": []}
    problems = ["--device cpu (dry run)"] if args.device == "cpu" else tensorrt_problems(gpu)
    print(f"GPU: {gpu.describe()}")
    config = resolve_config(onnx=args.onnx)
    ort = open_backend("onnxruntime", onnx=args.onnx, device="cpu", log=lambda m: None)
    frames = [inputs(config, s) for s in range(max(1, args.iters))]
    refs = [ort.infer(*f) for f in frames]
    ort.close()
    results["ort_providers"] = ort_providers(args.onnx, config)
    for row in results["ort_providers"]:
        print(f"ONNX Runtime device={row['device']}: " +
              (f"providers really used {row['providers']} ({row['reason']})" if "providers" in row
               else f"skipped: {row['skipped']}"))
    if problems:
        why = "; ".join(problems)
        for check in ("tensorrt fp32", "tensorrt fp32+cuda-graph", "tensorrt fp16", "GIL blocking",
                      "close() during inference"):
            print(f"{check}: skipped ({why})")
            results["skipped"].append({"check": check, "reason": why})
    else:
        for precision, graph in VARIANTS:
            name = f"tensorrt {precision}{'+cuda-graph' if graph else ''}"
            try:
                b = open_backend("tensorrt", onnx=args.onnx, precision=precision, cuda_graph=graph,
                                 cache_dir=args.cache_dir, log=log)
            except CKDError as exc:
                print(f"{name}: skipped ({exc})")
                results["skipped"].append({"check": name, "reason": str(exc)})
                continue
            cmp_ = []
            for f, ref in zip(frames, refs):
                b.set_template(f[0], f[1])
                for _ in range(2 if graph else 1):  # the second call replays the graph
                    cmp_.append(compare(b.infer_search(f[2], f[3]), ref))
            row = {"check": name, "max_err": max(c["max_err"] for c in cmp_),
                   "same_cell": float(np.mean([c["same_cell"] for c in cmp_])),
                   "min_iou": min(c["iou"] for c in cmp_), "describe": b.describe()}
            if not graph and precision == "fp32":
                row.update(gil_block(b, frames[0]))
                results["gil"] = {k: row[k] for k in ("inferences", "infer_p50_ms", "ticker_max_gap_ms",
                                                      "ticker_p50_gap_ms")}
                row.update(close_during_inference(b, frames[0]))
            else:
                b.close()
            ok = row["min_iou"] > 0.9 if precision == "fp16" else (row["max_err"] < 1e-3 and row["same_cell"] == 1.0)
            row["ok"] = bool(ok)
            results["variants"].append(row)
            print(f"{name}: max map error {row['max_err']:.2e}, same argmax cell {100 * row['same_cell']:.0f} %, "
                  f"min box IoU {row['min_iou']:.3f} -> {'OK' if ok else 'MISMATCH'}")
        if "gil" in results:
            g = results["gil"]
            print(f"GIL: {g['inferences']} inferences, p50 {g['infer_p50_ms']:.2f} ms; 1 ms ticker longest gap "
                  f"{g['ticker_max_gap_ms']:.2f} ms (p50 {g['ticker_p50_gap_ms']:.2f} ms)")
            fp32 = next(r for r in results["variants"] if r["check"] == "tensorrt fp32")
            print(f"close() during inference: returned after {fp32['close_s']:.3f} s, closer finished "
                  f"{fp32['closer_finished']}, worker finished {fp32['worker_finished']} "
                  f"({fp32['worker_error'] or 'no error'})")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0 if all(r.get("ok", True) for r in results["variants"]) else 1


if __name__ == "__main__":
    sys.exit(main())
