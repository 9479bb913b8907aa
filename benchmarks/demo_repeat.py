"""Run `make demo` N times and print the spread of its fps and IoU acceptance (a benchmark, not a test).

  .venv/bin/python benchmarks/demo_repeat.py [-n 10] [--json out/demo_repeat.json] [-- DEMO_ARGS ...]

Each run is `bash scripts/demo.sh check:=true out_dir:=<work>/run_<i> [DEMO_ARGS]` (the demo's own
acceptance: >= 15 fps and IoU > 0.5 on >= 80 % of frames). The 1-minute load average is recorded
before and after every run: on a shared machine other processes take the CPU the demo needs, so read
each figure together with its load.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_once(i: int, work: pathlib.Path, demo_args, quiet: bool) -> dict:
    out = work / f"run_{i:02d}"
    env = dict(os.environ, CKD_DEMO_SKIP_SETUP="1")
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "scripts/demo.sh", "check:=true", f"out_dir:={out}", *demo_args], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    row = {"run": i, "exit_code": proc.returncode, "seconds": round(time.monotonic() - t0, 1),
           "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}
    (work / f"run_{i:02d}.log").write_text(proc.stdout)
    summary = out / "demo_summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        row.update({k: s.get(k) for k in ("fps", "frac_iou_gt_0_5", "iou_mean", "passed", "processed_fraction",
                                          "latency_ms_p50", "latency_ms_p95")})
        row["inference"] = (s.get("tracker_diagnostics") or {}).get("latency_inference_ms")
    else:
        row["passed"] = False
        if not quiet:
            print(proc.stdout[-2000:], file=sys.stderr)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--runs", type=int, default=10)
    ap.add_argument("--work", type=pathlib.Path, default=REPO / "out" / "demo_repeat")
    ap.add_argument("--json", type=pathlib.Path, help="write every run's figures here")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("demo_args", nargs="*", help="launch arguments NAME:=VALUE passed to every run")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'run':>3} {'pass':>4} {'fps':>6} {'IoU>0.5':>8} {'lat p50':>8} {'load':>11}  inference", flush=True)
    for i in range(args.runs):
        r = run_once(i, args.work, args.demo_args, args.quiet)
        rows.append(r)
        fps, frac = r.get("fps"), r.get("frac_iou_gt_0_5")
        print(f"{i:>3} {'yes' if r.get('passed') else 'NO':>4} {fps or 0:>6.1f} {100 * (frac or 0):>7.1f}% "
              f"{r.get('latency_ms_p50') or 0:>7.1f} {r['load_before']:>5.2f}>{r['load_after']:<5.2f}  "
              f"{r.get('inference')}", flush=True)
    fps = np.array([r.get("fps") or 0.0 for r in rows])
    passed = sum(bool(r.get("passed")) for r in rows)
    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    print(f"passed {passed}/{len(rows)}; fps min {fps.min():.1f} median {np.median(fps):.1f} max {fps.max():.1f}; "
          f"load average {min(loads):.2f}..{max(loads):.2f} (cpus {os.cpu_count()})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": rows, "passed": passed, "demo_args": args.demo_args}, indent=1))
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
