"""Every `ckd` subcommand answers bad input with ONE line on stderr and a non-zero exit (issue 11, kind 5).

Each subcommand listed in `ckd_ros.cli.SUBCOMMAND_MODULES` (and each deprecated alias) is run in a
subprocess, as a user runs it, with inputs people really pass: a missing file, an empty file, a
truncated ONNX (an interrupted copy to the robot), a text file as a checkpoint, a directory instead of
a file, numbers that are not numbers or out of range, an output that cannot be written. Errors raised
inside onnx/protobuf, ONNX Runtime, safetensors, torch, OpenCV, YAML and the file system must be
translated at the command boundary; `--debug` / CKD_DEBUG=1 must still show the traceback.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from ckd_ros.cli import DEPRECATED_ALIASES, SUBCOMMAND_MODULES, describe_error

REPO = pathlib.Path(__file__).resolve().parents[1]
ONNX = REPO / "engines" / "demo_small.onnx"
WEIGHTS = REPO / "engines" / "demo_small.safetensors"


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """Paths of bad inputs (and one good sequence to combine them with)."""
    root = tmp_path_factory.mktemp("bad")
    p = {"MISSING": root / "does_not_exist.pth", "DIR": root / "a_directory", "EMPTY": root / "empty.pth",
         "TEXT": root / "notes.txt", "TRUNC_ONNX": root / "truncated.onnx", "TRUNC_ST": root / "truncated.safetensors",
         "NOTDIR": root / "a_file", "OUT": root / "out", "BADYAML": root / "bad.yaml", "LIST_YAML": root / "list.yaml",
         "SEQ": root / "seq", "EMPTYDIR": root / "empty_dir", "POINTS_TEXT": root / "points.csv"}
    p["DIR"].mkdir()
    p["EMPTYDIR"].mkdir()
    p["EMPTY"].write_bytes(b"")
    p["TEXT"].write_text("these are my notes, not a checkpoint\n" * 20, encoding="utf-8")
    p["TRUNC_ONNX"].write_bytes(ONNX.read_bytes()[:40_000])
    p["TRUNC_ST"].write_bytes(WEIGHTS.read_bytes()[:40_000])
    p["NOTDIR"].write_text("x", encoding="utf-8")
    p["OUT"].mkdir()
    p["BADYAML"].write_text("optim: {epochs: [1, 2\nseed: 3\n", encoding="utf-8")
    p["LIST_YAML"].write_text("- just\n- a list\n", encoding="utf-8")
    p["POINTS_TEXT"].write_text("thermal_x,thermal_y,rgb_x,rgb_y\n1,2,three,4\n", encoding="utf-8")
    seq = p["SEQ"]
    for sub in ("visible", "infrared"):
        (seq / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        img = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        cv2.imwrite(str(seq / "visible" / f"{i:06d}.png"), img)
        cv2.imwrite(str(seq / "infrared" / f"{i:06d}.png"), img[:, :, 0])
    (seq / "init.txt").write_text("40,30,20,20\n40,30,20,20\n", encoding="utf-8")
    (root / "list.txt").write_text("seq\n", encoding="utf-8")
    p["UNWRITABLE"] = p["NOTDIR"] / "sub"  # a path below a regular file: fails for root too
    p["ONNX"], p["WEIGHTS"], p["ROOT"] = ONNX, WEIGHTS, root
    return p


# subcommand -> argument lists; NAME placeholders are replaced by the paths of the `bad` fixture
CASES = {
    "convert": [["MISSING", "OUT/o.safetensors"], ["TEXT", "OUT/o.safetensors"], ["TRUNC_ONNX", "OUT/o.safetensors"],
                ["WEIGHTS", "UNWRITABLE/o.safetensors"]],
    "info": [["EMPTY"], ["DIR"], ["TRUNC_ST"]],
    "export": [["TEXT", "-o", "OUT/m.onnx"], ["WEIGHTS", "-o", "UNWRITABLE/m.onnx"],
               ["WEIGHTS", "-o", "OUT/m.onnx", "--opset", "seventeen"]],
    "build-engine": [["--onnx", "TRUNC_ONNX", "--cache-dir", "OUT/c"], ["--onnx", "MISSING"],
                     ["--checkpoint", "TEXT", "--cache-dir", "OUT/c"], ["--onnx", "ONNX", "--cache-dir", "UNWRITABLE"]],
    "latency": [["--iters", "0"], ["--iters", "many"], ["--checkpoint", "TEXT", "--backend", "torch", "--iters", "1"]],
    "track": [["--sequence", "MISSING"],
              ["--sequence", "SEQ", "--onnx", "TRUNC_ONNX", "--backend", "onnxruntime", "--quiet",
               "--out", "OUT/r1.txt"],
              ["--sequence", "SEQ", "--onnx", "EMPTY", "--backend", "onnxruntime", "--quiet", "--out", "OUT/r2.txt"],
              ["--sequence", "SEQ", "--checkpoint", "TEXT", "--backend", "torch", "--quiet", "--out", "OUT/r3.txt"],
              ["--sequence", "SEQ", "--checkpoint", "DIR", "--backend", "torch", "--quiet", "--out", "OUT/r4.txt"],
              ["--sequence", "SEQ", "--onnx", "ONNX", "--backend", "onnxruntime", "--quiet",
               "--out", "UNWRITABLE/r.txt"],
              ["--sequence", "SEQ", "--onnx", "ONNX", "--init", "1,2,x,4", "--quiet", "--out", "OUT/r5.txt"],
              ["--bag", "MISSING", "--onnx", "ONNX", "--quiet", "--out", "OUT/r6.txt"],
              ["--bag", "TEXT", "--onnx", "ONNX", "--quiet", "--out", "OUT/r7.txt"],
              ["--bag", "SEQ", "--onnx", "ONNX", "--quiet", "--out", "OUT/r8.txt"],
              ["--sequence", "SEQ", "--onnx", "ONNX", "--init", "1,2,1e9,4", "--quiet", "--out", "OUT/r9.txt"]],
    "bag": [["write", "OUT/b1", "--sequence", "MISSING"], ["write", "OUT/b2"],
            ["write", "UNWRITABLE/b", "--sequence", "SEQ"], ["write", "OUT/b3", "--synthetic", "1", "--size", "big"],
            ["write", "OUT/b4", "--synthetic", "1", "--frames", "0"], ["write", "ONNX", "--sequence", "SEQ"]],
    "calibrate": [["MISSING"], ["EMPTY"], ["DIR"], ["POINTS_TEXT"]],
    "eval": [["--dataset", "lasher", "--root", "MISSING", "--results", "OUT"],
             ["--dataset", "nosuchset", "--root", "ROOT", "--results", "OUT"],
             ["--dataset", "lasher", "--root", "EMPTYDIR", "--results", "TEXT"]],
    "benchmark": [["--dataset", "lasher", "--root", "MISSING", "--onnx", "ONNX"],
                  ["--dataset", "lasher", "--root", "ROOT", "--onnx", "TRUNC_ONNX", "--results", "OUT/b1",
                   "--quiet", "--no-eval"],
                  ["--dataset", "lasher", "--root", "ROOT", "--onnx", "ONNX", "--workers", "zero"]],
    "train": [["--config", "MISSING"], ["--config", "EMPTY"], ["--config", "BADYAML"], ["--config", "LIST_YAML"],
              ["--config", "REPO/config/train_tiny.yaml", "optim.epochs=[1"],
              ["--config", "REPO/config/train_tiny.yaml", "--output", "UNWRITABLE/run"]],
    "quantize": [["MISSING"], ["TRUNC_ONNX", "-o", "OUT/q1.onnx", "--method", "dynamic"],
                 ["TEXT", "-o", "OUT/q2.onnx", "--method", "dynamic"],
                 ["ONNX", "-o", "OUT/q3.onnx", "--calib", "sequence", "--sequence", "MISSING"],
                 ["ONNX", "-o", "UNWRITABLE/q.onnx", "--method", "dynamic"]],
    "synth": [["OUT/s1", "--sequences", "1", "--frames", "-4"], ["OUT/s2", "--frames", "x"],
              ["UNWRITABLE/s", "--sequences", "1", "--frames", "1", "--size", "32", "32"]],
}


def _argv(command, args, bad):
    def sub(a):
        head, _, tail = a.partition("/")
        if head == "REPO":
            return str(REPO / tail)
        if head in bad:
            return str(bad[head] / tail) if tail else str(bad[head])
        return a
    return [command] + [sub(a) for a in args]


def _run(argv, extra_env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("CKD_DEBUG", None)
    if os.environ.get("CKD_TEST_CACHE"):
        env["CKD_CACHE_DIR"] = os.environ["CKD_TEST_CACHE"]
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "ckd_ros.cli", *argv], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


def test_every_subcommand_has_bad_input_cases():
    assert set(CASES) == set(SUBCOMMAND_MODULES), "a new subcommand needs its bad inputs here"


def test_every_subcommand_answers_bad_input_in_one_line(bad, tmp_path, monkeypatch):
    monkeypatch.setenv("CKD_TEST_CACHE", str(tmp_path / "cache"))
    jobs = [_argv(cmd, args, bad) for cmd, cases in CASES.items() for args in cases]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_run, jobs))
    failures = []
    for argv, res in zip(jobs, results):
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        ok = (res.returncode not in (0, 1) and "Traceback" not in res.stderr and len(lines) == 1
              and lines[0].startswith(f"ckd {argv[0]}: error: "))
        if not ok:
            failures.append(f"{' '.join(argv)}\n  exit {res.returncode}, {len(lines)} stderr lines: "
                            + "\n  ".join(lines[-6:]))
    assert not failures, f"{len(failures)} of {len(jobs)} bad inputs not answered in one line:\n" + "\n".join(failures)


def test_deprecated_alias_says_so_once_then_behaves_like_the_new_name():
    for old, new in DEPRECATED_ALIASES.items():
        res = _run([old, "--iters", "0"])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert lines[0] == f"ckd {old}: deprecated, use `ckd {new}` (same options)"
        assert len(lines) == 2 and lines[1].startswith(f"ckd {new}: error: ") and "--iters" in lines[1]


@pytest.mark.torch
def test_messages_say_what_was_wrong_and_what_to_do(bad):
    res = _run(["track", "--sequence", str(bad["SEQ"]), "--onnx", str(bad["TRUNC_ONNX"]), "--backend",
                "onnxruntime", "--quiet", "--out", str(bad["OUT"] / "t.txt")])
    assert "truncated or not an ONNX file" in res.stderr and "ckd export" in res.stderr
    res = _run(["info", str(bad["TRUNC_ST"])])
    assert "truncated or corrupt" in res.stderr and "ckd convert" in res.stderr
    res = _run(["convert", str(bad["TEXT"]), str(bad["OUT"] / "x.safetensors")])
    assert "cannot read" in res.stderr and "expected an official .pth.tar" in res.stderr
    res = _run(["info", str(bad["DIR"])])
    assert "is a directory" in res.stderr


@pytest.mark.parametrize("how", ["flag_first", "flag_last", "env"])
def test_debug_shows_the_traceback(bad, how):
    argv = ["info", str(bad["TRUNC_ST"])]
    env = None
    if how == "flag_first":
        argv = ["--debug"] + argv
    elif how == "flag_last":
        argv = argv + ["--debug"]
    else:
        env = {"CKD_DEBUG": "1"}
    res = _run(argv, env)
    assert res.returncode == 2
    assert "Traceback (most recent call last)" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("ckd info: error: ")


@pytest.mark.torch
def test_dependency_errors_are_translated_without_importing_them():
    """The boundary recognises library errors by class; each gets a what-to-do."""
    from google.protobuf.message import DecodeError

    msg, code = describe_error(DecodeError("Error parsing message with type 'onnx.ModelProto'"))
    assert code == 2 and "re-export with `ckd export`" in msg
    err = cv2.error("OpenCV(4.10.0) /io/imgproc/color.cpp:196: error: (-215:Assertion failed) !_src.empty() "
                    "in function 'cvtColor'\n")
    msg, code = describe_error(err)
    assert code == 2 and msg.startswith("OpenCV failed ((-215:Assertion failed) !_src.empty()")
    msg, code = describe_error(PermissionError(13, "Permission denied", "/opt/engines/x.engine"))
    assert code == 2 and "/opt/engines/x.engine" in msg and "permission" in msg
    msg, code = describe_error(MemoryError())
    assert code == 2 and "out of memory" in msg
    import yaml

    try:
        yaml.safe_load("a: [1, 2\nb: 3\n")
    except yaml.YAMLError as exc:
        msg, code = describe_error(exc)
    assert code == 2 and msg.startswith("invalid YAML at <unicode string>:")
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidProtobuf

    msg, code = describe_error(InvalidProtobuf("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model failed"))
    assert code == 2 and "truncated or not an ONNX file" in msg
    msg, code = describe_error(Fail("[ONNXRuntimeError] : 1 : FAIL : Node (Add) Op (Add) [ShapeInferenceError]"))
    assert code == 2 and msg.startswith("ONNX Runtime failed (Fail: [ONNXRuntimeError] : 1 : FAIL")
    from safetensors import SafetensorError

    msg, code = describe_error(SafetensorError("Error while deserializing header: MetadataIncompleteBuffer"))
    assert code == 2 and "ckd convert" in msg
    from torch.onnx.errors import OnnxExporterError

    msg, code = describe_error(OnnxExporterError("Unsupported: ONNX export of operator nonzero"))
    assert code == 2 and msg.startswith("the ONNX export failed in torch (OnnxExporterError")
    msg, code = describe_error(ZeroDivisionError("division by zero"))
    assert code == 1 and "--debug" in msg and "\n" not in msg
