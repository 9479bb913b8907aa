"""The `ckd` command. Thin: each subsystem registers its own subcommands; this file only dispatches.

Each entry names a module with `register(subparsers)` that adds one or more subparsers and sets
`func(args) -> int`. Modules are imported lazily so `ckd eval` does not pay for importing torch.

This is the one command boundary: whatever a subcommand raises (a `CKDError`, or an error from
onnx, ONNX Runtime, TensorRT, OpenCV, safetensors, torch's exporter, YAML, the file system) ends as
ONE line `ckd <command>: error: <what was wrong>; <what to do>` on stderr and a non-zero exit
(2: bad input or environment, 1: an unexpected error, 130: interrupted). `--debug` (anywhere on the
command line) or CKD_DEBUG=1 prints the traceback instead.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from typing import List, Optional, Tuple

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
    "latency": "ckd_ros.runtime.cli",
    "quantize": "ckd_ros.tracking.quantize_cli",
    "track": "ckd_ros.tracking.cli",
    "calibrate": "ckd_ros.tracking.cli",
    "bag": "ckd_ros.tracking.cli",
    "eval": "ckd_ros.eval.cli",
    "benchmark": "ckd_ros.eval.cli",
    "train": "ckd_ros.train.cli",
    "synth": "ckd_ros.synthetic.cli",
}

# old name -> new name; the old name still works and prints one deprecation line
DEPRECATED_ALIASES = {"bench": "latency"}

EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 2, 1, 130
DEBUG_HINT = "rerun with --debug (or CKD_DEBUG=1) for the traceback"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (plus where to find the usage), exit 2."""

    def error(self, message: str):  # noqa: D401  (argparse API)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="ckd", description="CKD RGB-thermal tracker tools",
                           epilog="Errors are one line; --debug (or CKD_DEBUG=1) shows the traceback.")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
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


# ---- translating errors of dependencies into one line ----------------------------------------------
def _first_line(exc: BaseException, limit: int = 300, after_tag: str = "") -> str:
    """The most informative single line of an exception's message (libraries write several);
    with `after_tag`, the text after the first line holding that tag (OpenCV's "error:")."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    for ln in lines if after_tag else ():  # "OpenCV(4.10) .../color.cpp:196: error: (-215:Assertion failed) ..."
        if after_tag in ln:
            text = ln[ln.index(after_tag) + len(after_tag):].strip() or text
            break
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _class_names(exc: BaseException) -> List[str]:
    """'module.Name' of the exception's class and its bases (no library is imported to test them)."""
    return [f"{c.__module__}.{c.__name__}" for c in type(exc).__mro__]


def _os_error(exc: OSError) -> str:
    target = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        target = f"{exc.filename} -> {exc.filename2}"
    what = exc.strerror or _first_line(exc)
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {target}; check the path"
    if isinstance(exc, IsADirectoryError):
        return f"{target} is a directory; give a file path"
    if isinstance(exc, NotADirectoryError):
        return f"{target}: a part of the path is not a directory; check the path"
    if isinstance(exc, PermissionError):
        return f"permission denied: {target}; choose a location this user can write/read or fix its permissions"
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device writing {target}; free space or write elsewhere"
    if exc.errno == errno.EROFS:
        return f"read-only file system: {target}; write to a writable location"
    return f"{what}: {target}; check the path and the file" if target else f"{what}; check the file system"


def describe_error(exc: BaseException) -> Tuple[str, int]:
    """(one-line message, exit code) for an exception that reached the command boundary."""
    if isinstance(exc, CKDError):
        return _first_line(exc, limit=2000), EXIT_ERROR
    names = _class_names(exc)
    text = _first_line(exc)

    def has(*prefixes: str) -> bool:
        return any(n.startswith(prefixes) for n in names)

    if isinstance(exc, MemoryError) or has("torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError"):
        return (f"out of memory ({text}); use a smaller model/input or batch, fewer workers/threads, "
                "or a machine with more (GPU) memory"), EXIT_ERROR
    if has("google.protobuf.message.DecodeError", "google.protobuf.message.Error"):
        return (f"a protobuf (ONNX) file could not be parsed ({text}): it is truncated or not an ONNX file "
                "(interrupted copy?); copy it again or re-export with `ckd export`"), EXIT_ERROR
    if has("onnxruntime."):
        kind = type(exc).__name__
        if kind == "InvalidProtobuf":
            return (f"ONNX Runtime cannot parse the model ({text}): the file is truncated or not an ONNX file "
                    "(interrupted copy?); copy it again or re-export with `ckd export`"), EXIT_ERROR
        if kind in ("NoSuchFile", "NotFound"):
            return f"ONNX Runtime: file not found ({text}); check the path", EXIT_ERROR
        return (f"ONNX Runtime failed ({kind}: {text}); check that the ONNX file comes from `ckd export` "
                "and that onnxruntime is installed correctly"), EXIT_ERROR
    if has("onnx.", "onnx_ir."):
        return (f"onnx rejected the model ({type(exc).__name__}: {text}); re-export it with `ckd export`"), EXIT_ERROR
    if has("safetensors", "safetensors_rust."):
        return (f"cannot read the safetensors file ({text}): it is truncated or corrupt (interrupted copy?); "
                "copy it again or re-run `ckd convert`"), EXIT_ERROR
    if has("cv2.error"):
        detail = _first_line(exc, after_tag="error:")
        return (f"OpenCV failed ({detail}); check that the image/video files are readable images of the "
                "expected size and type"), EXIT_ERROR
    if has("yaml."):
        mark = getattr(exc, "problem_mark", None)
        where = f" at {mark.name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or text
        return f"invalid YAML{where} ({problem}); fix the file or the override", EXIT_ERROR
    if has("tensorrt", "tensorrt_rtx", "cuda.", "cuda_bindings"):
        return (f"TensorRT/CUDA failed ({type(exc).__name__}: {text}); check the GPU, driver and TensorRT "
                "installation (`ckd build-engine` reports them), or use --backend onnxruntime"), EXIT_ERROR
    if has("torch.onnx.", "torch._dynamo.", "torch.jit."):
        return (f"the ONNX export failed in torch ({type(exc).__name__}: {text}); check the model config/preset "
                "against the checkpoint, or report it with --debug output"), EXIT_ERROR
    if isinstance(exc, ModuleNotFoundError):
        if exc.name and exc.name.split(".")[0] in _INSTALL_HINT:
            return str(_missing_dependency(exc.name)), EXIT_ERROR
        return (f"a dependency is missing: {exc.name or text}; install it into this environment "
                "(see README, Installation)"), EXIT_ERROR
    if isinstance(exc, UnicodeDecodeError):
        return f"a text file is not UTF-8 text ({text}); give a text file (or the right file)", EXIT_ERROR
    if isinstance(exc, OSError):
        return _os_error(exc), EXIT_ERROR
    return (f"unexpected {type(exc).__name__}: {text}; this is a bug in ckd_ros or an input it does not "
            f"check yet: {DEBUG_HINT} and report it"), EXIT_BUG


def _debug_requested(argv: List[str]) -> Tuple[bool, List[str]]:
    """--debug anywhere on the line (before or after the subcommand), or CKD_DEBUG=1."""
    debug = os.environ.get("CKD_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    rest = [a for a in argv if a != "--debug"]
    return debug or len(rest) != len(argv), rest


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, argv = _debug_requested(argv)
    if argv and argv[0] in DEPRECATED_ALIASES:
        new = DEPRECATED_ALIASES[argv[0]]
        print(f"ckd {argv[0]}: deprecated, use `ckd {new}` (same options)", file=sys.stderr)
        argv[0] = new
    # Import only the module of the requested subcommand (fast start, fewer heavy imports).
    only = argv[0] if argv and argv[0] in SUBCOMMAND_MODULES else None
    command = only or "command"
    try:
        parser = build_parser(only)
        args = parser.parse_args(argv)
        command = args.command
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:  # a command that saved its work says where, in the message
        detail = _first_line(exc, limit=2000) if str(exc) else ""
        print(f"ckd {command}: interrupted" + (f": {detail}" if detail else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise  # argparse --help / usage errors (already one line)
    except Exception as exc:  # the command boundary: every error becomes one line
        if debug:
            import traceback

            traceback.print_exc()
        message, code = describe_error(exc)
        print(f"ckd {command}: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
