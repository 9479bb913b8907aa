"""`ckd train --config FILE [key.sub=value ...]`: CKD training (single process or under torchrun)."""
from __future__ import annotations

import argparse
import os


def _train(args) -> int:
    from ckd_ros.train.trainer import train
    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"resume={args.resume}")
    if args.output:
        overrides.append(f"output.dir={args.output}")
    from ckd_ros.train.config import load_config
    path = train(args.config, overrides)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"last checkpoint: {path}")
        print(_export_hint(path, load_config(args.config, overrides)))
    return 0


def _export_hint(path, cfg) -> str:
    from ckd_ros.model.config import CKDConfig
    from ckd_ros.train.config import model_config
    config = model_config(cfg)
    if config == CKDConfig.vitb_mce():
        return f"export the student: ckd convert {path} student.safetensors"
    preset = cfg["model"].get("preset")
    if preset and CKDConfig.preset(preset) == config:
        return f"export the student: ckd convert {path} student.safetensors --preset {preset}"
    return ("export the student (custom size, ckd convert cannot infer it): python -c \"from ckd_ros.model "
            "import CKDConfig, convert; convert('" + str(path) + "', 'student.safetensors', "
            "CKDConfig.from_dict(" + repr(config.to_dict()) + "))\"")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train CKD (teachers, stage-1 distillation, stage-2 MCE head fine-tuning)",
        description="Train the CKD RGB-T tracker from a YAML config (see config/train_*.yaml and "
                    "docs/training.md). Multi-GPU: torchrun --nproc_per_node N -m ckd_ros.cli train ...",
        epilog="Overrides use dotted keys with YAML values, e.g. optim.epochs=2 optim.batch_size=4 "
               "'data.datasets=[{type: synthetic, num_sequences: 4}]'.")
    p.add_argument("--config", required=True, help="training YAML (config/train_stage1.yaml, ...)")
    p.add_argument("--resume", help="checkpoint to resume from, or 'auto' for the latest in output.dir")
    p.add_argument("--output", help="output directory (overrides output.dir)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(func=_train)
