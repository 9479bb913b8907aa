"""The `ckd` command. Thin: each subsystem registers its own subcommands; this file only dispatches.

Each entry names a module with `register(subparsers)` that adds one or more subparsers and sets
`func(args) -> int`. Modules are imported lazily so `ckd eval` does not pay for importing torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from ckd_ros.errors import CKDError, DependencyError

# Where the Python packages of the offline tools come from (a robot has only requirements/robot.txt).
_INSTALL_HINT = {
    "torch": "requirements/export.txt",
    "safetensors": "requirements/export.txt",
    "onnx": "requirements/export.txt",
    "onnxscript": "requirements/export.txt",
    "tensorboard": "requirements/train.txt",
}

# subcommand name -> module providing register(subparsers)
SUBCOMMAND_MODULES = {
    "convert": "ckd_ros.model.cli",
    "info": "ckd_ros.model.cli",
    "export": "ckd_ros.runtime.cli",
    "build-engine": "ckd_ros.runtime.cli",
    "bench": "ckd_ros.runtime.cli",
    "track": "ckd_ros.tracking.cli",
    "calibrate": "ckd_ros.tracking.cli",
    "eval": "ckd_ros.eval.cli",
    "benchmark": "ckd_ros.eval.cli",
    "train": "ckd_ros.train.cli",
    "synth": "ckd_ros.synthetic.cli",
}


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ckd", description="CKD RGB-thermal tracker tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    seen = set()
    for name, module_name in SUBCOMMAND_MODULES.items():
        if only is not None and name != only:
            continue
        if module_name in seen:
            continue
        seen.add(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("ckd_ros"):
                continue  # subsystem not present in this build
            if not exc.name:
                raise
            _register_unavailable(sub, module_name, exc.name)  # e.g. no torch on a robot
            continue
        module.register(sub)
    return parser


def _missing_dependency(package: str) -> DependencyError:
    hint = _INSTALL_HINT.get(package.split(".")[0], "the requirements/ file of this tool")
    return DependencyError(f"needs the Python package '{package}', which is not installed: pip install -r {hint} "
                           "(in a venv on a PC; a robot runs exported ONNX files without it, see docs/ros.md)")


def _register_unavailable(sub, module_name: str, package: str) -> None:
    """List the subcommands of a module whose dependency is missing; running one says what to install."""
    def fail(args) -> int:
        raise _missing_dependency(package)

    for name, owner in SUBCOMMAND_MODULES.items():
        if owner == module_name:
            p = sub.add_parser(name, help=f"(needs {package}: not installed)", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=fail)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import only the module of the requested subcommand (fast start, fewer heavy imports).
    only = argv[0] if argv and argv[0] in SUBCOMMAND_MODULES else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] not in _INSTALL_HINT:
            raise
        print(f"ckd {args.command}: error: {_missing_dependency(exc.name)}", file=sys.stderr)
        return 2
    except CKDError as exc:
        print(f"ckd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ckd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
