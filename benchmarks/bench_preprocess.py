"""Pre- and post-processing cost of one tracked frame, network excluded.

    .venv/bin/python benchmarks/bench_preprocess.py [--frames 300] [--threads 1]

For 640x512 and 1920x1080 inputs it times `Tracker.track` with a backend that returns constant
maps (so only crops, normalisation, decode, map-back, clip and the state machine are measured),
split into the tracker's own stages, plus the optional per-frame steps in front of it (thermal
normalisation of a 16-bit frame, registration warp) and, for comparison, a straightforward
implementation (official sample_target + per-pixel float normalisation). Prints a table (ms).
"track, registered TIR" crops the thermal frame through a homography (one warp per crop);
"full-frame TIR warp" is what warping the whole frame first would cost instead.
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import cv2
import numpy as np

from ckd_ros.runtime.base import Backend
from ckd_ros.tracking import Registration, ThermalNormalizer, Tracker
from ckd_ros.tracking.preprocess import IMAGENET_MEAN, IMAGENET_STD

SIZES = {"640x512": (512, 640), "1920x1080": (1080, 1920)}


class ConstantBackend(Backend):
    """Peak at the centre cell: the box stays put, so every frame does the same work."""

    name = "constant"

    def __init__(self):
        super().__init__()
        score = np.full((1, 1, 16, 16), 0.1, np.float32)
        score[0, 0, 8, 8] = 0.9
        self.maps = {"score_map": score, "size_map": np.full((1, 2, 16, 16), 0.1, np.float32),
                     "offset_map": np.full((1, 2, 16, 16), 0.5, np.float32)}

    def infer(self, z_rgb, z_tir, x_rgb, x_tir):
        return self.maps


def official_crop(im, box, factor, out_sz):
    """OSTrack's sample_target verbatim (reference for the comparison column)."""
    x, y, w, h = box
    crop_sz = math.ceil(math.sqrt(w * h) * factor)
    x1 = round(x + 0.5 * w - crop_sz * 0.5)
    y1 = round(y + 0.5 * h - crop_sz * 0.5)
    x2, y2 = x1 + crop_sz, y1 + crop_sz
    x1_pad, y1_pad = max(0, -x1), max(0, -y1)
    x2_pad, y2_pad = max(x2 - im.shape[1] + 1, 0), max(y2 - im.shape[0] + 1, 0)
    crop = im[y1 + y1_pad:y2 - y2_pad, x1 + x1_pad:x2 - x2_pad, :]
    crop = cv2.copyMakeBorder(crop, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT)
    return cv2.resize(crop, (out_sz, out_sz)), out_sz / crop_sz


def official_normalize(crop):
    t = crop.transpose(2, 0, 1)[None].astype(np.float32)
    return ((t / np.float32(255.0)) - IMAGENET_MEAN.reshape(1, 3, 1, 1)) / IMAGENET_STD.reshape(1, 3, 1, 1)


def timed(fn, n):
    for _ in range(max(3, n // 10)):  # warm-up: allocator, OpenCV dispatch tables
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def bench_size(label, hw, box_frac, n):
    height, width = hw
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (height, width, 3), np.uint8)
    tir8 = rng.integers(0, 256, (height, width), np.uint8)
    tir3 = cv2.cvtColor(tir8, cv2.COLOR_GRAY2RGB)
    raw16 = rng.integers(7000, 9000, (height, width), np.uint16)
    side = box_frac * min(height, width)
    box = [width / 2 - side / 2, height / 2 - side / 2, side, side]

    tracker = Tracker(ConstantBackend())
    tracker.initialize(rgb, tir3, box)
    for _ in range(max(3, n // 10)):
        tracker.track(rgb, tir3)
    stages = {"preprocess": [], "postprocess": []}
    totals = []
    for _ in range(n):
        t0 = time.perf_counter()
        tracker.track(rgb, tir3)
        totals.append((time.perf_counter() - t0) * 1e3 - tracker.last_timing["inference"])
        for k in stages:
            stages[k].append(tracker.last_timing[k])
    row = {
        "track(pre+post)": statistics.median(totals),
        "  crops+norm": statistics.median(stages["preprocess"]),
        "  decode+map+clip": statistics.median(stages["postprocess"]),
    }
    tracker.initialize(rgb, tir8, box)
    row["track, gray TIR"] = timed(lambda: tracker.track(rgb, tir8), n) - tracker.last_timing["inference"]
    b = tracker.box.tolist()
    row["reference pre"] = timed(lambda: (official_normalize(official_crop(rgb, b, 4.0, 256)[0]),
                                          official_normalize(official_crop(tir3, b, 4.0, 256)[0])), n)
    row["thermal pct u16"] = timed(lambda: ThermalNormalizer("percentile")(raw16), n)
    row["thermal minmax u16"] = timed(lambda: ThermalNormalizer("minmax")(raw16), n)
    reg = Registration([1.01, 0.01, 3.0, -0.01, 0.99, -2.0, 0.0, 0.0, 1.0])
    reg_tracker = Tracker(ConstantBackend(), registration=reg)
    reg_tracker.initialize(rgb, tir8, box)
    row["track, registered TIR"] = (timed(lambda: reg_tracker.track(rgb, tir8), n)
                                    - reg_tracker.last_timing["inference"])
    row["full-frame TIR warp"] = timed(lambda: reg.warp_thermal(tir8, rgb.shape), n)
    crop_sz = math.ceil(side * 4.0)
    return f"{label} box {side:.0f}px (search crop {crop_sz}px)", row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (the node runs 1 tracker)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, OpenCV {cv2.__version__}, numpy {np.__version__}, "
          f"cv2 threads {args.threads}, median of {args.frames} frames, ms per frame")
    bench_size("warm-up", SIZES["640x512"], 0.1, 20)  # the first run in a process is slow
    results = []
    for label, hw in SIZES.items():
        for frac in (0.1, 0.4):
            results.append(bench_size(label, hw, frac, args.frames))
    keys = list(results[0][1])
    print(f"{'':>20}" + "".join(f" | {name:>34}" for name, _ in results))
    for key in keys:
        print(f"{key:>20}" + "".join(f" | {row[key]:>34.3f}" for _, row in results))


if __name__ == "__main__":
    main()
