"""`ckd quantize`: the INT8 demo model keeps the deployment rules, the FP32 argmax and says how it was made.

Small and CPU-only: the shipped demo model, calibrated on the crops the tracker takes over two short
synthetic scenes (the static QDQ path), plus the dynamic mode and the int8 precision plumbing.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import onnx
import pytest

from ckd_ros.cli import main
from ckd_ros.errors import CKDError, InputError
from ckd_ros.model.export import check_graph, read_metadata, sidecar_path
from ckd_ros.runtime import quantize as qz
from ckd_ros.tracking import quantize_cli as qcli

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO = REPO / "engines" / "demo_small.onnx"


@pytest.fixture(scope="module")
def demo_int8(tmp_path_factory):
    from ckd_ros.runtime.factory import open_backend

    out = tmp_path_factory.mktemp("quant") / "demo_int8.onnx"
    backend = open_backend("onnxruntime", onnx=DEMO, device="cpu", threads=1)
    try:
        samples = qcli.record_synthetic(backend, scenarios=("clean", "night"), frames=9, size=(320, 256))
    finally:
        backend.close()
    calib, held = qz.split_samples(samples)
    meta = qz.quantize_onnx(DEMO, out, samples=calib, eval_samples=held, threads=1,
                            calibration={"source": "synthetic", "scenarios": ["clean", "night"]})
    return dict(path=out, meta=meta, samples=samples, held=held)


def test_calibration_inputs_are_the_trackers_crops(demo_int8):
    samples = demo_int8["samples"]
    assert len(samples) == 2 * 8  # one per tracked frame; the init frame sets the template
    s = samples[0]
    assert s["z_rgb"].shape == (1, 3, 128, 128) and s["x_tir"].shape == (1, 3, 256, 256)
    assert all(v.dtype == np.float32 for v in s.values())
    # one template per scene, a new search crop every frame
    assert samples[0]["z_rgb"] is samples[7]["z_rgb"] and samples[8]["z_rgb"] is not samples[0]["z_rgb"]
    assert not np.array_equal(samples[0]["x_rgb"], samples[1]["x_rgb"])


def test_int8_graph_keeps_export_rules_and_fp32_islands(demo_int8):
    fp32, q = onnx.load(str(DEMO)), onnx.load(str(demo_int8["path"]))
    onnx.checker.check_model(q)
    assert check_graph(q, 17) == []
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("TopK") == [n.op_type for n in fp32.graph.node].count("TopK") == 2
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    counts = qz.quantized_op_counts(q)
    assert counts["MatMul"] > 0 and counts["Conv"] > 0
    # attention q.k^T / attn.v (they rank the tokens the CE TopK keeps) stay FP32
    dq = {o for n in q.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    act = set(qz.activation_matmuls(fp32))
    assert act and not any(i in dq for n in q.graph.node if n.name in act for i in n.input)
    head = set(qz.head_nodes(fp32))  # the box head stays FP32 too (measured: half the map error)
    assert len(head) == 15 and not any(i in dq for n in q.graph.node if n.name in head for i in n.input)
    assert counts["Conv"] == 4  # the patch embeddings (template + search, RGB + thermal)
    for node in q.graph.node:  # symmetric INT8: what TensorRT explicit quantization accepts
        if node.op_type == "QuantizeLinear":
            assert node.input[2] in {i.name for i in q.graph.initializer}
    zps = [onnx.numpy_helper.to_array(i) for i in q.graph.initializer if i.name.endswith("_zero_point")]
    assert zps and not any(z.any() for z in zps)  # zero points all 0
    assert {z.dtype for z in zps} == {np.dtype(np.int8), np.dtype(np.int32)}  # int32: Conv biases
    assert demo_int8["path"].stat().st_size < 0.5 * DEMO.stat().st_size


def test_sidecar_records_method_data_exclusions_and_error(demo_int8):
    meta = json.loads(sidecar_path(demo_int8["path"]).read_text())
    assert meta == read_metadata(demo_int8["path"]) == demo_int8["meta"]
    fp32_meta = read_metadata(DEMO)
    assert meta["config"] == fp32_meta["config"] and meta["inputs"] == fp32_meta["inputs"]
    qm = meta["quantization"]
    assert qm["method"] == "static" and qm["format"] == "QDQ"
    assert qm["calibration"] == {"source": "synthetic", "scenarios": ["clean", "night"], "samples": 12}
    fp32 = onnx.load(str(DEMO))
    assert sorted(qm["excluded_nodes"]) == sorted(qz.activation_matmuls(fp32) + qz.head_nodes(fp32))
    assert qm["fp32_parts"] == ["attention q.k^T / attn.v MatMuls", "box head"]
    from ckd_ros.hashing import file_sha256

    assert qm["source"]["sha256"] == file_sha256(DEMO)
    err = qm["error_vs_fp32"]
    assert err["samples"] == 4 == len(demo_int8["held"])
    assert err["argmax_agreement"] == 1.0  # the held-out frames pick the same cell as FP32
    assert 0 < err["score_map_mean_abs"] < 0.02
    assert qz.is_int8(demo_int8["path"]) and not qz.is_int8(DEMO)


def test_int8_backend_tracks_like_fp32_on_fresh_inputs(demo_int8):
    from ckd_ros.runtime.factory import open_backend

    fresh = qcli.record_synthetic(open_backend("onnxruntime", onnx=DEMO, device="cpu", threads=1),
                                scenarios=("occlusion",), frames=6, size=(320, 256), seed_base=4242)
    err = qz.compare_to_fp32(DEMO, demo_int8["path"], fresh, threads=1)
    assert err["samples"] == 5 and err["argmax_agreement"] == 1.0
    backend = open_backend("onnxruntime", onnx=demo_int8["path"], device="cpu", precision="int8", threads=1)
    try:
        backend.set_template(fresh[0]["z_rgb"], fresh[0]["z_tir"])
        maps = backend.infer_search(fresh[0]["x_rgb"], fresh[0]["x_tir"])
        assert maps["score_map"].shape == (1, 1, 16, 16) and maps["score_map"].dtype == np.float32
        assert "int8" in backend.describe()
    finally:
        backend.close()


def test_int8_precision_refuses_an_fp32_file():
    from ckd_ros.runtime.factory import open_backend

    with pytest.raises(CKDError, match="ckd quantize"):
        open_backend("onnxruntime", onnx=DEMO, device="cpu", precision="int8")


def test_dynamic_mode_and_refusals(tmp_path):
    out = tmp_path / "dyn.onnx"
    meta = qz.quantize_onnx(DEMO, out, method="dynamic")
    q = onnx.load(str(out))
    assert check_graph(q, 17) == []
    assert meta["quantization"]["method"] == "dynamic" and meta["quantization"]["calibration"] is None
    assert qz.quantized_op_counts(q).get("MatMulInteger", 0) > 0
    with pytest.raises(InputError, match="already quantized"):
        qz.quantize_onnx(out, tmp_path / "again.onnx", method="dynamic")
    with pytest.raises(InputError, match="calibration"):
        qz.quantize_onnx(DEMO, tmp_path / "s.onnx", method="static", samples=[])
    with pytest.raises(InputError, match="overwrite"):
        qz.quantize_onnx(DEMO, DEMO, method="dynamic")


def test_cli_quantize_from_a_sequence_folder(tmp_path, capsys):
    from ckd_ros.synthetic import make_sequence, write_sequence

    seq_dir = tmp_path / "seq"
    write_sequence(make_sequence(77, num_frames=5, size=(320, 256), scenario="clean"), seq_dir)
    out = tmp_path / "cli_int8.onnx"
    rc = main(["quantize", str(DEMO), "-o", str(out), "--calib", "sequence", "--sequence", str(seq_dir),
               "--frames", "5", "--threads", "1", "--json", str(tmp_path / "q.json")])
    assert rc == 0 and capsys.readouterr().out.strip() == str(out)
    record = json.loads((tmp_path / "q.json").read_text())
    assert record["calibration"]["source"] == "sequence seq" and record["calibration"]["samples"] == 3
    assert record["error_vs_fp32"]["samples"] == 1
    rc = main(["quantize", str(tmp_path / "missing.onnx")])
    assert rc == 2 and "not found" in capsys.readouterr().err


@pytest.mark.parametrize("trt_version", ["8.5.2", "8.6.1", "10.1.0"])
def test_int8_graph_is_accepted_by_tensorrt_onnx_parsers(demo_int8, trt_version):
    """The QDQ file is an explicit-quantization input TensorRT parses (INT8, zero points 0, constants)."""
    from ckd_ros.runtime.onnx_ops import check_onnx_ops, load_table
    from conftest import shared_path

    table = load_table(shared_path("data", "tensorrt_onnx_ops"), trt_version)
    int8 = check_onnx_ops(onnx.load(str(demo_int8["path"])), table)
    fp32 = check_onnx_ops(onnx.load(str(DEMO)), table)  # 8.5: opset-17 LayerNormalization (trt85 mode)
    assert set(int8) <= set(fp32)  # quantization adds nothing the parser rejects
    if trt_version.startswith("10."):
        assert int8 == []


def test_cli_quantize_calibrates_from_a_bag(tmp_path, capsys):
    """Calibration frames from a rosbag2 file go through `ckd track`'s input options (one frame layer)."""
    pytest.importorskip("rosbags", reason="rosbags (requirements/dev.txt) reads bags")
    from ckd_ros.synthetic import make_sequence, write_sequence

    seq_dir = tmp_path / "seq"
    write_sequence(make_sequence(78, num_frames=5, size=(320, 256), scenario="clean"), seq_dir)
    bag = tmp_path / "calib_bag"
    assert main(["bag", "write", str(bag), "--sequence", str(seq_dir), "--fps", "10"]) == 0
    capsys.readouterr()
    out = tmp_path / "bag_int8.onnx"
    rc = main(["quantize", str(DEMO), "-o", str(out), "--calib", "sequence", "--bag", str(bag),
               "--frames", "5", "--threads", "1", "--json", str(tmp_path / "q.json")])
    assert rc == 0 and capsys.readouterr().out.strip() == str(out)
    record = json.loads((tmp_path / "q.json").read_text())
    assert record["calibration"]["source"] == "sequence calib_bag"
    assert record["calibration"]["samples"] == 3 and record["error_vs_fp32"]["samples"] == 1
