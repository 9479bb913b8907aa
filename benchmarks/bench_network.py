#!/usr/bin/env python3
"""Network latency of the CKD student per backend and precision (same as `ckd latency`).

Example (the numbers in docs/deployment.md):
    .venv/bin/python benchmarks/bench_network.py --preset vitb,vitb_mce --backend torch,onnxruntime \
        --iters 10 --warmup 2 --json bench.json
"""
import sys

from ckd_ros.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
