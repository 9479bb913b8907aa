"""`ckd train --config FILE [key.sub=value ...]`: CKD training (single process or under torchrun)."""
from __future__ import annotations

import argparse
import os
import shlex


def _train(args) -> int:
    from ckd_ros.train.trainer import TrainingInterrupted, train

    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"resume={args.resume}")
    if args.output:
        overrides.append(f"output.dir={args.output}")
    try:
        path = train(args.config, overrides)
    except TrainingInterrupted as exc:
        if exc.checkpoint is None:
            raise
        raise TrainingInterrupted(f"{exc}; continue with: {_resume_command(args, exc.checkpoint)}",
                                  exc.checkpoint) from None
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"last checkpoint: {path}")
        print(f"export the student: ckd convert {path} student.safetensors  (the checkpoint carries its model "
              "config; no preset needed)")
    return 0


def _resume_command(args, checkpoint) -> str:
    """The `ckd train` line that resumes this run from `checkpoint`."""
    words = ["ckd", "train", "--config", str(args.config)]
    if args.output:
        words += ["--output", str(args.output)]
    words += ["--resume", str(checkpoint)] + [o for o in args.overrides if not o.startswith("resume=")]
    return " ".join(shlex.quote(w) for w in words)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train CKD (teachers, stage-1 distillation, stage-2 MCE head fine-tuning)",
        description="Train the CKD RGB-T tracker from a YAML config (see config/train_*.yaml and "
                    "docs/training.md). Multi-GPU: torchrun --nproc_per_node N -m ckd_ros.cli train ... "
                    "Ctrl-C/SIGTERM saves the finished work as a resumable checkpoint and prints how to resume.",
        epilog="Overrides use dotted keys with YAML values, e.g. optim.epochs=2 optim.batch_size=4 "
               "'data.datasets=[{type: synthetic, num_sequences: 4}]'.")
    p.add_argument("--config", required=True, help="training YAML (config/train_stage1.yaml, ...)")
    p.add_argument("--resume", help="checkpoint to resume from, or 'auto' for the latest in output.dir "
                                    "(including an interrupted epoch's .partial.pth.tar)")
    p.add_argument("--output", help="output directory (overrides output.dir)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(func=_train)
