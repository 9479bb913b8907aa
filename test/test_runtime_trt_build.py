"""Engine builder against fakes of TensorRT 8.5, 8.6 and 10.x (test/trt_fakes.py): options per
precision, the JetPack 5 path (FP32 normalisation layers), INT8 from QDQ files, heartbeat and
progress, straight-to-file writing with the builder dropped, logger errors as CKDError, one
logger per process. The real parser/builder is exercised with TensorRT-RTX in test_export_trt_rtx.py."""
from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from trt_fakes import TRT_VERSIONS, make_tensorrt

pytest.importorskip("onnx", reason="the fake TensorRT parser reads real ONNX files (onnx not installed)")

from ckd_ros.errors import BackendError, CheckpointError, CKDError, DependencyError
from ckd_ros.runtime import trt_build
from ckd_ros.runtime.trt_build import _Heartbeat, build_engine, build_engine_bytes, make_progress_monitor
from ckd_ros.runtime.trt_common import create_runtime, process_logger


def tiny_onnx(path, qdq=False, layernorm=False, decomposed=False, opset=17):
    """A small real ONNX file: Conv (+ Q/DQ) (+ a /model/norm1/ scope: LayerNormalization, or the
    ReduceMean/Sub of a decomposed one)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    inits, nodes, x = [w], [], "x"
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "zp")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="/q"),
                  helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="/dq")]
        x = "xd"
    nodes.append(helper.make_node("Conv", [x, "w"], ["c"], name="/conv"))
    if layernorm:
        inits += [numpy_helper.from_array(np.ones(4, np.float32), "g"),
                  numpy_helper.from_array(np.zeros(4, np.float32), "b")]
        nodes.append(helper.make_node("LayerNormalization", ["c", "g", "b"], ["y"],
                                      name="/model/norm1/LayerNormalization", axis=-1))
    elif decomposed:
        nodes += [helper.make_node("ReduceMean", ["c"], ["m"], name="/model/norm1/ReduceMean", axes=[-1]),
                  helper.make_node("Sub", ["c", "m"], ["y"], name="/model/norm1/Sub")]
    else:
        nodes.append(helper.make_node("Relu", ["c"], ["y"], name="/head/Relu"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


@pytest.fixture()
def model(tmp_path):
    return tiny_onnx(tmp_path / "m.onnx")


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_fp16_build_sets_flags_workspace_and_explicit_batch(model, monkeypatch, version):
    trt = make_tensorrt(version)
    logs = []
    plan = build_engine_bytes(model, precision="fp16", workspace_mb=512, trt=trt, log=logs.append)
    st = trt.state
    assert plan.startswith(b"PLAN") and st.builds == 1
    assert st.flags == {"FP16"} and st.pool == {"ws": 512 << 20}
    assert st.network_flags == (1 if version.startswith("8.") else 0)  # TensorRT 8.x needs EXPLICIT_BATCH
    assert st.pinned == []  # a standard export: no layer pinned
    assert any("[TensorRT WARNING] some layer fell back" in m for m in logs)
    assert any(f"{version}, fp16, workspace 512 MiB, 2 layers" in m for m in logs)


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_fp32_turns_tf32_off(model, version):
    trt = make_tensorrt(version)
    build_engine_bytes(model, precision="fp32", trt=trt, log=lambda m: None)
    assert trt.state.flags == set() and trt.state.cleared == {"TF32"}


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_decomposed_layernorm_stays_fp32_in_fp16_builds(tmp_path, version):
    """The trt85 export mode: norm-scope layers pinned to FP32, constraints obeyed."""
    onnx_path = tiny_onnx(tmp_path / "m.onnx", decomposed=True)
    trt = make_tensorrt(version)
    logs = []
    build_engine_bytes(onnx_path, precision="fp16", trt=trt, log=logs.append)
    assert trt.state.flags == {"FP16", "OBEY_PRECISION_CONSTRAINTS"}
    assert trt.state.pinned == [("/model/norm1/ReduceMean", trt.float32, {0: trt.float32}),
                                ("/model/norm1/Sub", trt.float32, {0: trt.float32})]
    assert any("2 normalisation layers kept in FP32" in m for m in logs)


def test_tensorrt_85_cannot_parse_layernormalization(tmp_path):
    onnx_path = tiny_onnx(tmp_path / "ln.onnx", layernorm=True)
    with pytest.raises(CheckpointError, match="No importer registered for op: LayerNormalization"):
        build_engine_bytes(onnx_path, trt=make_tensorrt("8.5.2.2"), log=lambda m: None)
    build_engine_bytes(onnx_path, trt=make_tensorrt("8.6.2.3"), log=lambda m: None)


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_int8_builds_from_qdq_and_refuses_plain_graphs(tmp_path, version):
    qdq = tiny_onnx(tmp_path / "q.onnx", qdq=True)
    trt = make_tensorrt(version)
    build_engine_bytes(qdq, precision="int8", trt=trt, log=lambda m: None)
    assert trt.state.flags == {"INT8", "FP16"}  # explicit quantization + FP16 fallback
    plain = tiny_onnx(tmp_path / "p.onnx")
    with pytest.raises(CheckpointError, match="no QuantizeLinear/DequantizeLinear nodes: int8 needs the QDQ ONNX"):
        build_engine_bytes(plain, precision="int8", trt=make_tensorrt(version), log=lambda m: None)


def test_timing_cache_round_trip(model, tmp_path):
    trt = make_tensorrt("8.5.2.2")
    tc = tmp_path / "t" / "timing.cache"
    build_engine_bytes(model, trt=trt, timing_cache_path=tc, log=lambda m: None)
    assert trt.state.timing_in == b"" and tc.read_bytes() == b"+t"
    build_engine_bytes(model, trt=trt, timing_cache_path=tc, log=lambda m: None)
    assert trt.state.timing_in == b"+t" and tc.read_bytes() == b"+t+t"


def test_engine_written_to_file_after_the_builder_is_dropped(model, tmp_path):
    trt = make_tensorrt("10.3.0")
    seen = {}

    def write(mv):
        seen.update({k: ref() is None for k, ref in trt.state.refs.items()})
        seen["bytes"] = bytes(mv)

    build_engine(model, None, trt=trt, log=lambda m: None, write=write)
    assert seen["builder"] and seen["network"] and seen["config"], seen  # all freed before the write
    out = tmp_path / "e.engine"
    n = build_engine(model, out, trt=make_tensorrt("10.3.0"), log=lambda m: None)
    assert out.stat().st_size == n and out.read_bytes() == seen["bytes"]


def test_parser_and_builder_failures_are_ckd_errors(tmp_path, monkeypatch):
    trt = make_tensorrt("10.3.0")
    with pytest.raises(CKDError, match="precision"):
        build_engine_bytes(tmp_path / "m.onnx", precision="int4", trt=trt, log=lambda m: None)
    model = tiny_onnx(tmp_path / "m.onnx")
    monkeypatch.setattr(trt.Builder, "build_serialized_network", lambda self, n, c: None)
    with pytest.raises(BackendError, match="failed to build"):
        build_engine_bytes(model, trt=trt, log=lambda m: None)


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_heartbeat_on_every_version_and_progress_where_it_exists(model, monkeypatch, version):
    monkeypatch.setattr(trt_build, "HEARTBEAT_S", 0.02)
    trt = make_tensorrt(version)
    trt.state.build_seconds = 0.15
    logs = []
    build_engine_bytes(model, trt=trt, log=logs.append)
    assert any("still building" in m for m in logs)  # TensorRT >= 9 too (only ~6 top-level steps)
    has_monitor = not version.startswith("8.")
    assert any("engine build: Building engine (3 steps)" in m for m in logs) == has_monitor


def test_heartbeat_stops_with_the_build():
    logs = []
    with _Heartbeat(logs.append, period=0.02):
        time.sleep(0.15)
    assert len(logs) >= 2 and all("still building" in m for m in logs)
    n = len(logs)
    time.sleep(0.05)
    assert len(logs) == n


def test_progress_monitor_logs_top_level_phases_only():
    trt = make_tensorrt("10.3.0")
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
    assert make_progress_monitor(make_tensorrt("8.6.2.3"), print) is None


def test_logger_error_while_creating_runtime_or_builder_is_a_dependency_error(model):
    """TensorRT on a too-old driver logs 'CUDA initialization failure' and returns an object whose
    next call segfaults: that must stop with the install line instead."""
    trt = make_tensorrt("10.3.0")
    trt.state.runtime_error = "CUDA initialization failure with error: 35"
    with pytest.raises(DependencyError, match="could not create a runtime .CUDA initialization failure"):
        create_runtime(trt, log=lambda m: None)
    trt.state.builder_error = "CUDA initialization failure with error: 35"
    with pytest.raises(DependencyError, match="could not create a builder"):
        build_engine_bytes(model, trt=trt, log=lambda m: None)


def test_one_logger_per_process(model):
    trt = make_tensorrt("10.3.0")
    build_engine_bytes(model, trt=trt, log=lambda m: None)
    create_runtime(trt, log=lambda m: None)
    build_engine_bytes(model, trt=trt, log=lambda m: None)
    assert len(trt.state.loggers) == 3 and all(lg is process_logger(trt) for lg in trt.state.loggers)
    # messages still reach the caller of each build
    logs = []
    build_engine_bytes(model, trt=trt, log=logs.append)
    assert any("some layer fell back" in m for m in logs)


def test_missing_tensorrt_is_a_clear_error(monkeypatch):
    from ckd_ros.runtime.trt_common import import_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as on a machine without it
    monkeypatch.delenv("CKD_TRT_MODULE", raising=False)
    with pytest.raises(DependencyError, match="'tensorrt' is not importable.*python3-libnvinfer"):
        import_tensorrt()
