"""Engine builder against a fake TensorRT 8.5-style module (no IProgressMonitor, FP16 flag, timing
cache, explicit-batch flag): the options it sets, the heartbeat, timing-cache round trip, errors.
The real parser/builder is exercised with TensorRT-RTX in test_export_trt_rtx.py."""
from __future__ import annotations

import types

import pytest

from ckd_ros.errors import CKDError
from ckd_ros.runtime import trt_build
from ckd_ros.runtime.trt_build import _Heartbeat, build_engine_bytes, make_progress_monitor


class _Severity(int):
    @property
    def name(self):
        return {1: "ERROR", 2: "WARNING", 3: "INFO"}[int(self)]


def fake_trt(version="8.5.2", parse_ok=True, build_ok=True):
    state = types.SimpleNamespace(flags=set(), cleared=set(), pool={}, timing_in=None, network_flags=None,
                                  built=0)

    class ILogger:
        def __init__(self):
            pass

    class Logger:
        Severity = types.SimpleNamespace(ERROR=_Severity(1), WARNING=_Severity(2), INFO=_Severity(3))

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return memoryview(self.data + b"+new")

    class Config:
        def set_memory_pool_limit(self, pool, n):
            state.pool[pool] = n

        def set_flag(self, f):
            state.flags.add(f)

        def clear_flag(self, f):
            state.cleared.add(f)

        def create_timing_cache(self, data):
            state.timing_in = bytes(data)
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            return True

    class Network:
        num_layers = 42

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            state.network_flags = flags
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            state.built += 1
            self.logger.log(Logger.Severity.WARNING, "some layer fell back")
            return memoryview(b"PLAN") if build_ok else None

    class OnnxParser:
        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            return parse_ok

        num_errors = 2

        def get_error(self, i):
            return f"node {i}: unsupported op NonZero"

    mod = types.SimpleNamespace(
        __name__="tensorrt", __version__=version, ILogger=ILogger, Logger=Logger, Builder=Builder,
        OnnxParser=OnnxParser, MemoryPoolType=types.SimpleNamespace(WORKSPACE="ws"),
        BuilderFlag=types.SimpleNamespace(FP16="fp16", TF32="tf32"),
        NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0))
    return mod, state


def test_fp16_build_sets_flags_workspace_and_explicit_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(trt_build, "HEARTBEAT_S", 0.01)
    trt, state = fake_trt()
    logs = []
    plan = build_engine_bytes(tmp_path / "m.onnx", precision="fp16", workspace_mb=512, trt=trt, log=logs.append)
    assert plan == b"PLAN" and state.built == 1
    assert state.flags == {"fp16"} and state.pool == {"ws": 512 << 20}
    assert state.network_flags == 1  # TensorRT 8.x needs EXPLICIT_BATCH
    assert any("[TensorRT WARNING] some layer fell back" in m for m in logs)
    assert any("8.5.2, fp16, workspace 512 MiB, 42 layers" in m for m in logs)


def test_fp32_turns_tf32_off_and_tensorrt10_needs_no_batch_flag(tmp_path):
    trt, state = fake_trt(version="10.3.0")
    build_engine_bytes(tmp_path / "m.onnx", precision="fp32", trt=trt, log=lambda m: None)
    assert state.flags == set() and state.cleared == {"tf32"} and state.network_flags == 0


def test_timing_cache_round_trip(tmp_path):
    trt, state = fake_trt()
    tc = tmp_path / "t" / "timing.cache"
    build_engine_bytes(tmp_path / "m.onnx", trt=trt, timing_cache_path=tc, log=lambda m: None)
    assert state.timing_in == b"" and tc.read_bytes() == b"+new"
    build_engine_bytes(tmp_path / "m.onnx", trt=trt, timing_cache_path=tc, log=lambda m: None)
    assert state.timing_in == b"+new" and tc.read_bytes() == b"+new+new"


def test_parser_and_builder_failures_are_ckd_errors(tmp_path):
    trt, _ = fake_trt(parse_ok=False)
    with pytest.raises(CKDError, match="could not parse m.onnx: node 0: unsupported op NonZero"):
        build_engine_bytes(tmp_path / "m.onnx", trt=trt, log=lambda m: None)
    trt, _ = fake_trt(build_ok=False)
    with pytest.raises(CKDError, match="failed to build"):
        build_engine_bytes(tmp_path / "m.onnx", trt=trt, log=lambda m: None)
    with pytest.raises(CKDError, match="precision"):
        build_engine_bytes(tmp_path / "m.onnx", precision="int8", trt=trt, log=lambda m: None)


def test_no_progress_monitor_means_heartbeat():
    trt, _ = fake_trt()
    assert make_progress_monitor(trt, print) is None
    logs = []
    with _Heartbeat(logs.append, period=0.02):
        import time

        time.sleep(0.15)
    assert len(logs) >= 2 and all("still building" in m for m in logs)
    n = len(logs)
    time.sleep(0.05)
    assert len(logs) == n  # stopped with the build


def test_progress_monitor_logs_top_level_phases_only():
    base = type("IProgressMonitor", (), {"__init__": lambda self: None})
    trt = types.SimpleNamespace(IProgressMonitor=base)
    logs = []
    mon = make_progress_monitor(trt, logs.append)
    mon.phase_start("Building engine", None, 40)
    mon.phase_start("Tactic timing", "Building engine", 1000)
    for step in range(40):
        assert mon.step_complete("Building engine", step) is True
        mon.step_complete("Tactic timing", step)
    mon.phase_finish("Building engine")
    assert logs[0].startswith("engine build: Building engine (40 steps)")
    assert logs[1:] == ["engine build: Building engine 25%", "engine build: Building engine 50%",
                                    "engine build: Building engine 75%"]


def test_missing_tensorrt_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as on a machine without it
    monkeypatch.delenv("CKD_TRT_MODULE", raising=False)
    with pytest.raises(CKDError, match="'tensorrt' is not importable.*python3-libnvinfer"):
        trt_build.import_tensorrt()
