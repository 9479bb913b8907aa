"""ONNX export of the parity fixtures: deployment rules, metadata, and ONNX Runtime == PyTorch.

The fixtures hold batch 2; the exported graph is batch 1, so every sample runs on its own. Kept
token sets are compared through a debug export whose extra outputs are the kept raster indices.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch

from ckd_ros.errors import CKDError
from ckd_ros.model import CKDConfig, load_checkpoint
from ckd_ros.model.export import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    check_graph,
    export_onnx,
    read_metadata,
    sidecar_path,
)
from conftest import shared_path

TOL = 1e-4
FIXTURE_INPUTS = ("template_rgb", "template_tir", "search_rgb", "search_tir")


def _ort(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=["noce", "mce"])
def exported(request, tmp_path_factory):
    name = request.param
    ckpt = shared_path("fixtures", "ckd_parity", f"{name}.pth")
    io = dict(np.load(shared_path("fixtures", "ckd_parity", f"{name}_io.npz")))
    model = load_checkpoint(ckpt, CKDConfig.preset(f"parity_{name}"))
    out = tmp_path_factory.mktemp(f"export_{name}")
    paths = {"deploy": out / f"{name}.onnx", "debug": out / f"{name}_debug.onnx"}
    metas = {"deploy": export_onnx(model, paths["deploy"], checkpoint=ckpt),
             "debug": export_onnx(model, paths["debug"], checkpoint=ckpt, debug_outputs=True)}
    return dict(name=name, ckpt=ckpt, io=io, model=model, paths=paths, metas=metas)


def _sample(io, b):
    return [io[k][b:b + 1].astype(np.float32) for k in FIXTURE_INPUTS]


def test_graph_follows_deployment_rules(exported):
    for variant, path in exported["paths"].items():
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
        assert check_graph(proto, 17) == [], variant
        ops = {n.op_type for n in proto.graph.node}
        assert "NonZero" not in ops and "GatherND" not in ops
        assert "LayerNormalization" in ops  # opset >= 17 keeps LN fused (FP16-safe in TensorRT)
        assert [i.name for i in proto.graph.input] == list(INPUT_NAMES)
        outs = [o.name for o in proto.graph.output]
        assert outs[:3] == list(OUTPUT_NAMES)
        for value in proto.graph.input:
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            assert [d.dim_value for d in value.type.tensor_type.shape.dim][0] == 1
        topk = [n for n in proto.graph.node if n.op_type == "TopK"]
        assert len(topk) == (3 if exported["name"] == "mce" else 0)
    debug_outs = [o.name for o in onnx.load(str(exported["paths"]["debug"])).graph.output]
    assert debug_outs[3:] == ([f"kept_idx_{j}" for j in range(3)] if exported["name"] == "mce" else [])


def test_metadata_in_file_and_sidecar(exported):
    path, meta = exported["paths"]["deploy"], exported["metas"]["deploy"]
    from ckd_ros.hashing import file_sha256

    assert meta["checkpoint"]["sha256"] == file_sha256(exported["ckpt"])
    assert CKDConfig.from_dict(meta["config"]) == exported["model"].config
    assert meta["opset"] == 17 and meta["exporter"]["torch"] == torch.__version__
    assert meta["inputs"]["x_rgb"] == [1, 3, 256, 256] and meta["outputs"]["score_map"] == [1, 1, 16, 16]
    assert json.loads(sidecar_path(path).read_text()) == meta
    embedded = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(embedded["ckd_ros"]) == meta
    sidecar_path(path).unlink()  # the file alone still describes itself
    assert read_metadata(path) == meta


@pytest.mark.parametrize("b", [0, 1])
def test_onnxruntime_matches_pytorch_and_fixture(exported, b):
    io, model = exported["io"], exported["model"]
    inputs = _sample(io, b)
    with torch.no_grad():
        ref = model(*[torch.from_numpy(a) for a in inputs], return_extras=True)
    for variant, path in exported["paths"].items():
        sess = _ort(path)
        names = [o.name for o in sess.get_outputs()]
        got = dict(zip(names, sess.run(None, dict(zip(INPUT_NAMES, inputs)))))
        for name in OUTPUT_NAMES:
            err_torch = np.abs(got[name] - ref[name].numpy()).max()
            err_fixture = np.abs(got[name] - io[name][b:b + 1]).max()
            assert err_torch < TOL, (variant, name, err_torch)
            assert err_fixture < TOL, (variant, name, err_fixture)
        cell = got["score_map"].reshape(-1).argmax()
        assert cell == io["score_map"][b].reshape(-1).argmax()
        if variant == "debug" and exported["name"] == "mce":
            for j in range(3):
                onnx_set = set(got[f"kept_idx_{j}"][0].tolist())
                assert onnx_set == set(io[f"ce{j}_keep_global_idx"][b].tolist()), j
                assert onnx_set == set(ref["kept_idx"][j][0].tolist()), j
                assert len(onnx_set) == (180, 126, 89)[j]


def test_kept_sets_follow_the_input_not_the_export_example(exported):
    """The selection is computed in the graph: a different frame keeps a different set."""
    if exported["name"] != "mce":
        pytest.skip("no candidate elimination in noce")
    sess = _ort(exported["paths"]["debug"])
    names = [o.name for o in sess.get_outputs()]
    kept = []
    for b in range(2):
        got = dict(zip(names, sess.run(None, dict(zip(INPUT_NAMES, _sample(exported["io"], b))))))
        kept.append(set(got["kept_idx_2"][0].tolist()))
    assert kept[0] != kept[1]


def test_check_graph_flags_what_tensorrt_rejects():
    class Bad(torch.nn.Module):
        def forward(self, x):
            k = x.shape[1] // 2  # traced from the shape: a computed K
            return x[x > 0].sum() + torch.topk(x, k, dim=1).values.sum()

    import io as _io

    buf = _io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(Bad(), (torch.randn(1, 8),), buf, dynamo=False, opset_version=17,
                          do_constant_folding=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}})
    problems = check_graph(onnx.load_from_string(buf.getvalue()), 17)
    text = " | ".join(problems)
    assert "NonZero" in text and "computed K" in text and "non-static" in text
    assert any("opset" in p for p in check_graph(onnx.load_from_string(buf.getvalue()), 18))


def test_export_refuses_a_broken_graph(monkeypatch, tmp_path, exported):
    from ckd_ros.model import export as export_mod

    monkeypatch.setattr(export_mod, "check_graph", lambda proto, opset: ["TopK x has a computed K"])
    with pytest.raises(CKDError, match="computed K"):
        export_onnx(exported["model"], tmp_path / "x.onnx")


def test_names_match_the_backend_interface():
    from ckd_ros.runtime.base import INPUT_NAMES as RT_IN
    from ckd_ros.runtime.base import OUTPUT_NAMES as RT_OUT

    assert (INPUT_NAMES, OUTPUT_NAMES) == (RT_IN, RT_OUT)
