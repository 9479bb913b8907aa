"""Threshold vectors exactly as MATLAB's colon operator builds them.

MATLAB fills `a:d:b` from both ends towards the middle, so `0:0.05:1` holds 0.6499999999999999 (not
0.65) and 0.15000000000000002. The official toolkits compare against these values, so an IoU of exactly
0.65 counts as a success at the "0.65" threshold. Reproducing them keeps per-sequence curves bit-exact.
"""
from __future__ import annotations

import math

import numpy as np


def colon(a: float, d: float, b: float) -> np.ndarray:
    """`a:d:b` (d > 0), after Cleve Moler's description of the built-in algorithm."""
    if d <= 0:
        raise ValueError("colon() needs a positive step")
    tol = 2.0 * np.finfo(float).eps * max(abs(a), abs(b))
    if a == math.floor(a) and d == 1:
        n = math.floor(b) - a
    elif a == math.floor(a) and d == math.floor(d):
        q = math.floor(a / d)
        n = math.floor((b - (a - q * d)) / d) - q
    else:
        n = round((b - a) / d)
        if a + n * d - b > tol:
            n -= 1
    n = int(n)
    if n < 0:
        return np.zeros(0)
    c = a + n * d  # right-hand end point, snapped to b when within tolerance
    if c - b > -tol:
        c = b
    v = np.zeros(n + 1)
    k = np.arange(n // 2 + 1)
    v[k] = a + k * d
    v[n - k] = c - k * d
    if n % 2 == 0:
        v[n // 2] = (a + c) / 2
    return v


# Thresholds used by the official toolkits (see docs/eval.md).
OVERLAP_21 = colon(0, 0.05, 1)  # LasHeR, RGBT234, RGBT210, VTUAV success curves
OVERLAP_51 = colon(0, 0.02, 1)  # GTOT success curve
PIXELS_51 = colon(0, 1, 50)  # LasHeR, RGBT234, RGBT210, VTUAV precision curves (px)
GTOT_PIXELS = colon(0, 0.5, 25)  # GTOT precision curve (px); index 10 is 5 px
NORM_51 = colon(0, 1, 50) / 100  # LasHeR normalised precision: (0:50)/100, element-wise division
