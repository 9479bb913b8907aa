"""CI check without a GPU: every exported graph uses only operators (and the restrictions on them)
that the target TensorRT version's ONNX parser accepts, from the parser's own operator tables for
8.5 (JetPack 5.1), 8.6 (JetPack 6.0) and 10.1 (TensorRT 10.x). The TensorRT-RTX parse check
(test_export_trt_rtx.py) accepts more than 8.5 and cannot catch this."""
from __future__ import annotations

import numpy as np
import pytest

from ckd_ros.model import CKDConfig, load_checkpoint
from ckd_ros.model.export import export_onnx
from ckd_ros.model.onnx_meta import EXPORT_MODES, export_mode_for_trt
from ckd_ros.runtime.onnx_ops import check_onnx_ops, load_table, table_file_for, unchecked_restrictions
from conftest import shared_path

VERSIONS = ("8.5.2", "8.6.1", "10.3.0")


@pytest.fixture(scope="module")
def tables():
    root = shared_path("data", "tensorrt_onnx_ops")
    return {v: load_table(root, v) for v in VERSIONS}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, one_torch_thread):
    out = {}
    tmp = tmp_path_factory.mktemp("ops")
    for name in ("noce", "mce"):
        model = load_checkpoint(shared_path("fixtures", "ckd_parity", f"{name}.pth"),
                                CKDConfig.preset(f"parity_{name}"))
        for mode in EXPORT_MODES:
            path = tmp / f"{name}-{mode}.onnx"
            export_onnx(model, path, mode=mode, write_sidecar=False)
            out[(name, mode)] = path
    return out


def test_table_choice_per_version():
    assert table_file_for("8.5.2.2") == "operators-8.5-GA.md"
    assert table_file_for("8.6.2.3") == table_file_for("9.3.0") == "operators-8.6-GA.md"
    assert table_file_for("10.3.0.26") == "operators-10.1-GA.md"
    assert export_mode_for_trt("8.5.2.2").name == "trt85" and export_mode_for_trt("8.6.2").name == "standard"


@pytest.mark.parametrize("name", ["noce", "mce"])
def test_each_export_mode_parses_on_the_versions_it_is_for(tables, exported, name):
    for version in VERSIONS:
        mode = export_mode_for_trt(version)  # what build-engine picks for this TensorRT
        problems = check_onnx_ops(exported[(name, mode.name)], tables[version])
        assert problems == [], (version, mode.name, problems[:3])
    # the trt85 graph parses everywhere; the standard (opset 17) graph is exactly what 8.5 refuses
    for version in VERSIONS:
        assert check_onnx_ops(exported[(name, "trt85")], tables[version]) == []
    problems = check_onnx_ops(exported[(name, "standard")], tables["8.5.2"])
    assert problems and all("LayerNormalization" in p for p in problems)


def test_every_restriction_on_our_operators_is_checked(tables, exported):
    import onnx

    ops = set()
    for path in exported.values():
        ops |= {n.op_type for n in onnx.load(str(path)).graph.node}
    ops |= {"QuantizeLinear", "DequantizeLinear"}  # `ckd quantize` output
    for version, table in tables.items():
        unchecked = {op: unchecked_restrictions(table.rows[op]) for op in ops if op in table.rows}
        assert not any(unchecked.values()), (version, unchecked)


def _graph(nodes, inits, opset=17):
    from onnx import TensorProto, helper

    return helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits),
        opset_imports=[helper.make_opsetid("", opset)])


def test_the_check_has_teeth(tables):
    from onnx import helper, numpy_helper

    t85, t10 = tables["8.5.2"], tables["10.3.0"]
    computed_k = _graph([helper.make_node("Shape", ["x"], ["s"], name="shape"),
                         helper.make_node("Slice", ["s", "one", "two"], ["k"], name="slice"),
                         helper.make_node("TopK", ["x", "k"], ["y", "i"], name="topk")],
                        [numpy_helper.from_array(np.array([1], np.int64), "one"),
                         numpy_helper.from_array(np.array([2], np.int64), "two")])
    assert any("`K` must be an initializer" in p for p in check_onnx_ops(computed_k, t85))
    big_k = _graph([helper.make_node("TopK", ["x", "k"], ["y", "i"], name="topk")],
                   [numpy_helper.from_array(np.array([4000], np.int64), "k")])
    assert any("less than 3840" in p for p in check_onnx_ops(big_k, t10))
    unsorted = _graph([helper.make_node("TopK", ["x", "k"], ["y", "i"], name="topk", sorted=0)],
                      [numpy_helper.from_array(np.array([2], np.int64), "k")])
    assert any("`sorted` must be 1" in p for p in check_onnx_ops(unsorted, t10))
    uint8 = _graph([helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q"),
                    helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq")],
                   [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                    numpy_helper.from_array(np.array(128, np.uint8), "zp")])
    problems = check_onnx_ops(uint8, t85)
    assert any("must be a constant zero" in p for p in problems) and any("UINT8" in p for p in problems)
    assert any("opset 21 outside" in p for p in check_onnx_ops(_graph([], [], opset=21), t85))


def test_symmetric_int8_qdq_export_is_accepted_by_every_parser(tables, exported, tmp_path):
    """The QDQ form `ckd quantize` must produce for TensorRT: INT8 activations and weights, zero points 0."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from ckd_ros.model.export import example_inputs

    cfg = CKDConfig.preset("parity_mce")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{n: t.numpy() for n, t in zip(("z_rgb", "z_tir", "x_rgb", "x_tir"),
                                                              example_inputs(cfg, seed))} for seed in range(2)])

        def get_next(self):
            return next(self.items, None)

    out = tmp_path / "qdq.onnx"
    quantize_static(str(exported[("mce", "trt85")]), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=["MatMul", "Conv"], extra_options={"ActivationSymmetric": True})
    for version in VERSIONS:
        assert check_onnx_ops(out, tables[version]) == [], version
