"""INT8 accuracy gates of issue 14, measured (not a test): prints the figures, writes JSON.

1. Parity fixtures (../shared/fixtures/ckd_parity, mce and noce; random weights) and the trained demo
   model: the checkpoint is exported with the kept-token debug outputs, quantised by `ckd quantize`'s
   static path (calibration: the tracker's crops over the synthetic scenes, FP32 model), then FP32 and
   INT8 are compared on the fixture inputs and on held-out tracker crops: score-map argmax cell and
   kept-token sets (gate >= 95 %).
2. Demo model (`--demo`): `python -m ckd_ros.demo.evaluate` on FP32 and INT8 files over the held-out
   synthetic set (docs/demo.md protocol); gate: SR and PR within 1.0 point.

  .venv/bin/python benchmarks/quant_gates.py [--demo-int8 engines/demo_small_int8.onnx] [--json out/quant_gates.json]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("CKD_SHARED", "/work/shared" if not (REPO.parent / "shared").is_dir()
                                     else REPO.parent / "shared"))
FIXTURE_INPUTS = ("template_rgb", "template_tir", "search_rgb", "search_tir")  # = test/test_export_parity.py


def kept_set_gate(label: str, checkpoint, cfg, work: pathlib.Path, frames: int, fixture_io=None) -> dict:
    """Quantise a debug export (kept-token outputs) of `checkpoint` as `ckd quantize` does; compare
    FP32 and INT8 on the fixture inputs (if any) and on held-out tracker crops."""
    from ckd_ros.model import load_checkpoint
    from ckd_ros.model.export import INPUT_NAMES, debug_output_names, export_onnx
    from ckd_ros.runtime import quantize as qz
    from ckd_ros.runtime.ort_backend import OnnxRuntimeBackend
    from ckd_ros.tracking import quantize_cli as qcli

    model = load_checkpoint(checkpoint, cfg)
    fp32 = work / f"{label}_debug.onnx"
    export_onnx(model, fp32, debug_outputs=True)
    backend = OnnxRuntimeBackend(fp32, config=cfg, device="cpu", gpu_ok=False)
    samples = qcli.record_synthetic(backend, frames=frames)
    backend.close()
    calib, held = qz.split_samples(samples)
    int8 = work / f"{label}_debug_int8.onnx"
    meta = qz.quantize_onnx(fp32, int8, samples=calib, calibration={"source": "synthetic"})
    extra = debug_output_names(cfg)
    sets = {"tracker_crops": held}
    if fixture_io is not None:
        sets["fixture_inputs"] = [dict(zip(INPUT_NAMES, (fixture_io[k][b:b + 1].astype(np.float32)
                                                         for k in FIXTURE_INPUTS)))
                                  for b in range(fixture_io["search_rgb"].shape[0])]
    out = {k: qz.compare_to_fp32(fp32, int8, v, extra_outputs=extra) for k, v in sets.items()}
    out["calibration_samples"] = len(calib)
    out["excluded_nodes"] = len(meta["quantization"]["excluded_nodes"])
    return out


def _line(label: str, r: dict) -> str:
    parts = []
    for k in ("fixture_inputs", "tracker_crops"):
        if k in r:
            kept = r[k].get("kept_set_agreement")
            parts.append(f"{k} ({r[k]['samples']}): argmax {100 * r[k]['argmax_agreement']:.1f}%, kept sets "
                         + (", ".join(f"{100 * v:.0f}%" for v in kept.values()) if kept else "n/a (no CE)"))
    return f"{label}: " + "; ".join(parts)


def demo_gate(fp32: str, int8: str, work: pathlib.Path) -> dict:
    res = {}
    for tag, path in (("fp32", fp32), ("int8", int8)):
        js = work / f"demo_eval_{tag}.json"
        subprocess.run([sys.executable, "-m", "ckd_ros.demo.evaluate", "--onnx", path,
                        "--work", str(work / "demo_eval"), "--per-scenario", "3", "--frames", "120",
                        "--tag", tag, "--json", str(js)], check=True, stdout=subprocess.DEVNULL)
        res[tag] = json.loads(js.read_text())["rgbt"]["metrics"]
    res["delta_points"] = {k: 100 * (res["int8"][k] - res["fp32"][k]) for k in res["fp32"]}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=pathlib.Path, default=REPO / "out" / "quant_gates")
    ap.add_argument("--frames", type=int, default=24, help="tracked frames per synthetic calibration scene")
    ap.add_argument("--demo-int8", help="INT8 demo model: also run the demo gate (minutes)")
    ap.add_argument("--demo-fp32", default=str(REPO / "engines" / "demo_small.onnx"))
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    from ckd_ros.model import CKDConfig

    fx = SHARED / "fixtures" / "ckd_parity"
    report = {"parity": {n: kept_set_gate(f"parity_{n}", fx / f"{n}.pth", CKDConfig.preset(f"parity_{n}"), args.work,
                                          args.frames, np.load(fx / f"{n}_io.npz")) for n in ("mce", "noce")}}
    report["demo_small"] = kept_set_gate("demo_small", REPO / "engines" / "demo_small.safetensors",
                                         CKDConfig.preset("demo_small"), args.work, args.frames)
    for label, r in list(report["parity"].items()) + [("demo_small", report["demo_small"])]:
        print(_line(label, r), flush=True)
    if args.demo_int8:
        report["demo"] = demo_gate(args.demo_fp32, args.demo_int8, args.work)
        print("demo held-out: " + ", ".join(f"{k} FP32 {100 * report['demo']['fp32'][k]:.1f} INT8 "
                                           f"{100 * report['demo']['int8'][k]:.1f}" for k in report["demo"]["fp32"]))
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
