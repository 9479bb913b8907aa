"""Write a folder of synthetic sequences in the LasHeR layout (training data, held-out test sets).

  ckd synth OUT --sequences 120 --frames 100 --seed-base 1000     (or python -m ckd_ros.synthetic.dataset)
  ckd synth OUT --per-scenario 3 --seed-base 900000               # balanced test set
  ... --rgb-only     # the comparison: 'infrared/' holds the RGB frame's gray image, not thermal

Seeds are disjoint by construction (training uses seed_base 1000.., held-out tests 900000..), so a
test sequence is never a training sequence. Thermal is written as 8-bit 3-channel JPEG stretched per
frame (1-99 percentiles), which is what the evaluation runner and the deployed node feed the network.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ckd_ros.errors import InputError
from ckd_ros.synthetic.scene import SCENARIOS
from ckd_ros.synthetic.sequence import SyntheticSequence, make_sequence, write_sequence

LIST_FILE = "sequences.txt"


def rgb_only(seq: SyntheticSequence) -> SyntheticSequence:
    """The same sequence with the thermal camera replaced by the RGB camera's gray image."""
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in seq.rgb])
    # scaled into 16-bit counts so the writer's percentile stretch applies as for thermal
    return SyntheticSequence(rgb=seq.rgb, thermal16=gray.astype(np.uint16) * 257, boxes=seq.boxes,
                             scenario=seq.scenario, seed=seq.seed, effects=seq.effects)


def plan(sequences: int = 0, per_scenario: int = 0, seed_base: int = 1000,
         scenarios: Optional[Sequence[str]] = None) -> List[Tuple[int, Optional[str]]]:
    """(seed, scenario) pairs: `sequences` with seeded scenarios, or `per_scenario` of each scenario."""
    if per_scenario:
        names = list(scenarios or SCENARIOS)
        return [(seed_base + i * len(names) + j, name) for i in range(per_scenario) for j, name in enumerate(names)]
    return [(seed_base + i, None) for i in range(sequences)]


def write_dataset(root, items: Iterable[Tuple[int, Optional[str]]], num_frames: int = 100,
                  size: Tuple[int, int] = (640, 512), modality: str = "rgbt", log=print) -> List[str]:
    """Write every (seed, scenario) as root/<name>/ (LasHeR layout) and root/sequences.txt; resumable."""
    if modality not in ("rgbt", "rgb_only"):
        raise ValueError(f"modality must be 'rgbt' or 'rgb_only', got {modality!r}")
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    items = list(items)
    t0 = time.monotonic()
    for k, (seed, scenario) in enumerate(items):
        seq = make_sequence(seed, num_frames, size=size, scenario=scenario)
        name = f"syn{seed:06d}_{seq.scenario}"
        names.append(name)
        done = root / name / "init.txt"
        if not done.is_file():  # init.txt is written last: its presence marks a finished sequence
            write_sequence(rgb_only(seq) if modality == "rgb_only" else seq, root / name, thermal="gray8")
        if log and (k + 1) % 10 == 0:
            log(f"  {k + 1}/{len(items)} sequences ({time.monotonic() - t0:.0f} s)")
    (root / LIST_FILE).write_text("\n".join(names) + "\n", encoding="utf-8")
    return names


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of `ckd synth` and `python -m ckd_ros.synthetic.dataset` (defined once, here)."""
    ap.add_argument("out", type=pathlib.Path, help="output folder (LasHeR layout + sequences.txt)")
    ap.add_argument("--sequences", type=int, default=0, help="number of sequences with seeded scenarios")
    ap.add_argument("--per-scenario", type=int, default=0, help="instead: this many sequences of each scenario")
    ap.add_argument("--scenarios", nargs="*", default=None, choices=SCENARIOS)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--seed-base", type=int, default=1000)
    ap.add_argument("--size", type=int, nargs=2, default=(640, 512), metavar=("W", "H"))
    ap.add_argument("--rgb-only", action="store_true", help="infrared/ = gray RGB (the RGB-only comparison)")


def run(args: argparse.Namespace) -> int:
    """Write the dataset the parsed options describe. Raises InputError on out-of-range values."""
    if args.sequences < 0 or args.per_scenario < 0 or not (args.sequences or args.per_scenario):
        raise InputError("give --sequences N or --per-scenario K (a positive count)")
    if args.frames < 1 or min(args.size) < 16 or args.seed_base < 0:
        raise InputError(f"--frames must be >= 1, --size W H >= 16 px and --seed-base >= 0 (got --frames "
                         f"{args.frames}, --size {args.size[0]} {args.size[1]}, --seed-base {args.seed_base})")
    items = plan(args.sequences, args.per_scenario, args.seed_base, args.scenarios)
    names = write_dataset(args.out, items, args.frames, tuple(args.size), "rgb_only" if args.rgb_only else "rgbt")
    print(f"wrote {len(names)} sequences to {args.out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ckd_ros.synthetic.dataset", description=__doc__.split("\n")[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    try:
        return run(args)
    except InputError as exc:
        ap.error(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
