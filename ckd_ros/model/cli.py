"""`ckd convert` and `ckd info`: checkpoint conversion and inspection."""
from __future__ import annotations

import argparse


def _config_from_args(args):
    from ckd_ros.model.config import CKDConfig
    return CKDConfig.preset(args.preset) if getattr(args, "preset", None) else None


def _convert(args) -> int:
    from ckd_ros.model.checkpoint import convert
    model = convert(args.input, args.output, _config_from_args(args))
    print(f"wrote {args.output}: {model.config.name} student, {model.num_parameters() / 1e6:.2f} M parameters "
          f"(safetensors + config; loads without pickle)")
    return 0


def _info(args) -> int:
    from ckd_ros.model.checkpoint import load_checkpoint, read_state_dict
    sd, stored, meta = read_state_dict(args.input)
    model = load_checkpoint(args.input, _config_from_args(args))
    print(f"file: {args.input}")
    print(f"format: {meta.get('format', 'PyTorch pickle (official or state dict)')}")
    print(f"student keys: {len(sd)}; parameters: {model.num_parameters():,}")
    print(f"config: {model.config.to_json()}")
    if meta.get("source_sha256"):
        print(f"converted from sha256 {meta['source_sha256']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ckd_ros.model.config import PRESETS

    presets = ", ".join(PRESETS)
    p = sub.add_parser("convert", help="official/plain checkpoint -> safe deployable .safetensors",
                       description="Read an official CKD .pth.tar (restricted unpickler: no code runs), a plain "
                                   "state dict or a converted file, keep the student, and write safetensors with "
                                   "the model config in its metadata.")
    p.add_argument("input", help="checkpoint (.pth.tar / .pth / .safetensors)")
    p.add_argument("output", help="output .safetensors")
    p.add_argument("--preset", help=f"model preset when the file does not say ({presets}); default: inferred "
                                    "from shapes (ViT-B -> vitb_mce)")
    p.set_defaults(func=_convert)
    q = sub.add_parser("info", help="print what a checkpoint holds")
    q.add_argument("input")
    q.add_argument("--preset", help=f"model preset ({presets})")
    q.set_defaults(func=_info)
