"""Vectorised procedural noise: fractal (multi-octave) value noise and per-frame sensor-noise banks."""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np


def fractal_noise(rng: np.random.Generator, h: int, w: int, base: int = 8, octaves: int = 5,
                  persistence: float = 0.55) -> np.ndarray:
    """HxW float32 noise in [0, 1]: octaves of upsampled random grids (cheap Perlin substitute)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    cells = base
    for _ in range(octaves):
        gh, gw = max(2, int(round(h / cells))), max(2, int(round(w / cells)))
        grid = rng.random((gh, gw), dtype=np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
        cells = max(1, cells // 2)
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def blob_labels(rng: np.random.Generator, h: int, w: int, count: int, size: Tuple[int, int]) -> np.ndarray:
    """HxW int32 label map (0 = none, k = k-th blob) of random rectangles and ellipses.

    The same geometry (buildings, roads) is seen by both cameras, but each modality gives every
    label its own random level (`levels[labels]`): shared edges, unrelated contrast.
    """
    out = np.zeros((h, w), np.int32)
    lo, hi = size
    for k in range(1, count + 1):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        a, b = int(rng.integers(lo, hi)), int(rng.integers(lo, hi))
        if rng.random() < 0.5:
            cv2.rectangle(out, (cx - a, cy - b), (cx + a, cy + b), k, -1)
        else:
            cv2.ellipse(out, (cx, cy), (a, b), float(rng.uniform(0, 180)), 0, 360, k, -1)
    return out


def noise_bank(rng: np.random.Generator, count: int, shape: Tuple[int, ...], sigma: float) -> np.ndarray:
    """`count` frames of zero-mean Gaussian noise (int16): drawn once, indexed by frame number."""
    return np.round(rng.standard_normal((count, *shape), dtype=np.float32) * sigma).astype(np.int16)
