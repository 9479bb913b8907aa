"""Score the demo model: held-out synthetic sequences (and the RGB-only comparison), the real VTUAV clip.

  python -m ckd_ros.demo.evaluate --onnx engines/demo_small.onnx \
      [--rgb-only-onnx runs/demo_rgb/demo_rgb_only.onnx] [--real ../shared/data/vtuav_bus1] [--work out/demo_eval]

Held-out sequences use seeds 900000+ (training uses 1000+), `--per-scenario` of each scenario, and
are written once under <work>/data. The tracker is the deployed one (`Tracker` + ONNX Runtime) run by
the benchmark runner, scored with the LasHeR protocol (PR at 20 px, normalised PR, SR = success AUC).
The RGB-only model is evaluated on the same sequences with `infrared/` = the RGB gray image.
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import shutil
import sys
from typing import Dict, Optional

from ckd_ros.synthetic.dataset import plan, write_dataset

HELD_OUT_SEED = 900000


def score_model(dataset_root: pathlib.Path, results_dir: pathlib.Path, protocol: str, onnx: Optional[str] = None,
                checkpoint: Optional[str] = None, backend: str = "onnxruntime", progress: bool = True) -> Dict:
    """Run the tracker over a dataset folder; metrics (fractions) overall and per scenario."""
    from ckd_ros.eval import evaluate_tracker, open_dataset
    from ckd_ros.eval.runner import TrackerSpec, run_benchmark

    dataset = open_dataset(protocol, dataset_root)
    spec = TrackerSpec(backend=backend, onnx=onnx, checkpoint=checkpoint, device="cpu")
    runs = run_benchmark(dataset, results_dir, spec, progress=progress)
    result = evaluate_tracker(dataset, results_dir, attributes=False)
    out = {"metrics": {k: v / 100.0 for k, v in result.metrics.items()},
           "frames": result.frames, "fps": sum(r.frames for r in runs) / max(sum(r.seconds for r in runs), 1e-9)}
    groups = collections.defaultdict(list)
    for name, values in result.per_sequence.items():
        groups[name.split("_", 1)[1] if "_" in name else name].append(values)
    out["per_scenario"] = {g: {k: sum(v[k] for v in vals) / len(vals) / 100.0 for k in vals[0]}
                           for g, vals in sorted(groups.items())}
    return out


def real_clip_root(clip: pathlib.Path, work: pathlib.Path) -> pathlib.Path:
    """The VTUAV reader wants a root holding sequence folders: link the single clip into one."""
    root = work / "real"
    root.mkdir(parents=True, exist_ok=True)
    link = root / clip.name
    if not link.exists():
        link.symlink_to(clip.resolve(), target_is_directory=True)
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ckd_ros.demo.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--onnx", help="RGB-T demo model (ONNX)")
    ap.add_argument("--checkpoint", help="or a checkpoint (with --backend torch)")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--rgb-only-onnx", help="the same network trained on RGB alone")
    ap.add_argument("--rgb-only-checkpoint")
    ap.add_argument("--real", type=pathlib.Path, help="a real VTUAV-layout clip, e.g. ../shared/data/vtuav_bus1")
    ap.add_argument("--work", type=pathlib.Path, default=pathlib.Path("out/demo_eval"))
    ap.add_argument("--per-scenario", type=int, default=3)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--tag", default="demo", help="results sub-folder name (re-using it resumes)")
    ap.add_argument("--fresh", action="store_true", help="delete earlier results under this tag first")
    ap.add_argument("--json", type=pathlib.Path, help="write the numbers here too")
    args = ap.parse_args(argv)
    if not (args.onnx or args.checkpoint):
        ap.error("give --onnx or --checkpoint")

    items = plan(per_scenario=args.per_scenario, seed_base=HELD_OUT_SEED)
    data = args.work / "data" / f"heldout_{args.per_scenario}x{args.frames}"
    results = args.work / "results" / args.tag
    if args.fresh and results.exists():
        shutil.rmtree(results)
    report: Dict = {"held_out": {"sequences": len(items), "frames_per_sequence": args.frames,
                                 "seeds": f"{HELD_OUT_SEED}..{HELD_OUT_SEED + len(items) - 1}"}}
    write_dataset(data / "rgbt", items, args.frames, modality="rgbt", log=None)
    report["rgbt"] = score_model(data / "rgbt", results / "rgbt", "lasher", args.onnx, args.checkpoint, args.backend)
    if args.rgb_only_onnx or args.rgb_only_checkpoint:
        write_dataset(data / "rgb_only", items, args.frames, modality="rgb_only", log=None)
        report["rgb_only"] = score_model(data / "rgb_only", results / "rgb_only", "lasher", args.rgb_only_onnx,
                                         args.rgb_only_checkpoint, args.backend)
    if args.real:
        report["real"] = score_model(real_clip_root(args.real, args.work), results / "real", "vtuav", args.onnx,
                                     args.checkpoint, args.backend)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
