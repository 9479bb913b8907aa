#!/usr/bin/env bash
# One command on a GPU machine (PyTorch with CUDA, onnxruntime, numpy, OpenCV preinstalled; no
# internet, nothing to install): full-size vitb_mce and vitb with random weights, PyTorch eager
# FP32 / FP16 / BF16, CUDA-graph replay, torch.compile, the whole tracker loop, peak GPU memory, then
# TensorRT rows from benchmarks/gpu_check_trt.py when that file exists and TensorRT is importable.
# Prints a table, writes out/gpu_check.json. Under 8 minutes (rows past --budget-s are skipped).
#   bash benchmarks/gpu_check.sh                         # GPU
#   bash benchmarks/gpu_check.sh --device cpu --iters 2  # dry run (CI)
# PYTHON=... picks the interpreter (default: the repo's .venv if present, else python3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
exec "$PYTHON" "$ROOT/benchmarks/gpu_check.py" "$@"
