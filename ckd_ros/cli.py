"""The `ckd` command. Thin: each subsystem registers its own subcommands; this file only dispatches.

Each entry names a module with `register(subparsers)` that adds one or more subparsers and sets
`func(args) -> int`. Modules are imported lazily so `ckd eval` does not pay for importing torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ckd_ros.errors import CKDError

# subcommand name -> module providing register(subparsers)
SUBCOMMAND_MODULES = {
    "convert": "ckd_ros.model.cli",
    "info": "ckd_ros.model.cli",
    "export": "ckd_ros.runtime.cli",
    "build-engine": "ckd_ros.runtime.cli",
    "bench": "ckd_ros.runtime.cli",
    "quantize": "ckd_ros.runtime.quantize",
    "track": "ckd_ros.tracking.cli",
    "calibrate": "ckd_ros.tracking.cli",
    "eval": "ckd_ros.eval.cli",
    "benchmark": "ckd_ros.eval.cli",
    "train": "ckd_ros.train.cli",
    "synth": "ckd_ros.synthetic.cli",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ckd", description="CKD RGB-thermal tracker tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    seen = set()
    for name, module_name in SUBCOMMAND_MODULES.items():
        if only is not None and name != only:
            continue
        if module_name in seen:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("ckd_ros"):
                continue  # subsystem not present in this build
            raise
        module.register(sub)
        seen.add(module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import only the module of the requested subcommand (fast start, fewer heavy imports).
    only = argv[0] if argv and argv[0] in SUBCOMMAND_MODULES else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CKDError as exc:
        print(f"ckd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ckd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
