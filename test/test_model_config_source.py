"""One rule for "which model config wins" (ckd_ros.model.config_source.resolve_config), used by
open_backend, load_checkpoint and the node; and the exporter's torch-version handling."""
from __future__ import annotations

import json

import pytest

from ckd_ros.errors import CheckpointError, CKDError, DependencyError, ParameterError
from ckd_ros.model.config import PRESETS, CKDConfig
from ckd_ros.model.config_source import resolve_config
from ckd_ros.model.onnx_meta import FORMAT, sidecar_path


@pytest.fixture()
def onnx_with_meta(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not parsed: the sidecar answers")
    sidecar_path(path).write_text(json.dumps({"format": FORMAT, "config": CKDConfig.demo_small().to_dict()}))
    return path


def test_the_files_own_record_wins_and_an_ignored_preset_is_said(onnx_with_meta):
    logs = []
    cfg = resolve_config(preset="vitb_mce", onnx=onnx_with_meta, log=logs.append)
    assert cfg == CKDConfig.demo_small()
    assert logs == [f"{onnx_with_meta} holds a 'demo_small' model; the given preset 'vitb_mce' is ignored"]
    logs.clear()
    assert resolve_config(preset="demo_small", onnx=onnx_with_meta, log=logs.append) == CKDConfig.demo_small()
    assert logs == []
    stored = CKDConfig.vitb()
    assert resolve_config(config=CKDConfig.vitb_mce(), checkpoint="x.pth", stored=stored) == stored


def test_explicit_config_then_preset_then_nothing(tmp_path):
    assert resolve_config(config=CKDConfig.vitb().to_dict()) == CKDConfig.vitb()
    assert resolve_config(preset="vitb_ce") == CKDConfig.vitb_ce()
    assert resolve_config(checkpoint="official.pth.tar", stored=None) is None  # inferred from the weights
    assert resolve_config(preset="vitb", checkpoint="official.pth.tar", stored=None) == CKDConfig.vitb()
    with pytest.raises(ParameterError, match="either a config or a preset"):
        resolve_config(config=CKDConfig.vitb(), preset="vitb")
    with pytest.raises(CKDError, match="unknown model preset 'vitb9000'; choose one of: vitb_mce, vitb"):
        resolve_config(preset="vitb9000")
    assert PRESETS == ("vitb_mce", "vitb", "vitb_ce", "demo_small")


def test_onnx_without_metadata_needs_an_explicit_config(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    path = tmp_path / "foreign.onnx"
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(CheckpointError, match="carries no ckd_ros metadata"):
        resolve_config(onnx=path)
    assert resolve_config(preset="vitb", onnx=path) == CKDConfig.vitb()


@pytest.mark.parametrize("version, has_dynamo, expect", [
    ("2.0.0+nv23.05", False, {}),  # JetPack 5 wheel: legacy exporter only, no `dynamo` keyword
    ("2.3.0", False, {}),  # JetPack 6 wheel
    ("2.5.1", True, {"dynamo": False}),
    ("2.13.0+cpu", True, {"dynamo": False}),
])
def test_exporter_keywords_follow_the_installed_torch(monkeypatch, version, has_dynamo, expect):
    import torch

    from ckd_ros.model import export

    def legacy(model, args, f, export_params=True, opset_version=None, do_constant_folding=True,
               input_names=None, output_names=None):
        pass

    def modern(model, args, f, *, opset_version=None, dynamo=True, **kw):
        pass

    monkeypatch.setattr(torch, "__version__", version)
    monkeypatch.setattr(torch.onnx, "export", modern if has_dynamo else legacy)
    assert export._torch_export_kwargs() == expect


def test_exporter_refuses_torch_older_than_2(monkeypatch):
    import torch

    from ckd_ros.model import export

    monkeypatch.setattr(torch, "__version__", "1.13.1")
    with pytest.raises(DependencyError, match=r"ONNX export needs torch >= 2.0 \(found 1.13.1\)"):
        export._torch_export_kwargs()


def test_export_mode_from_mode_or_opset():
    from ckd_ros.model.export import resolve_mode

    assert resolve_mode().name == "standard" and resolve_mode(opset=16).name == "trt85"
    assert resolve_mode("trt85").opset == 16 and resolve_mode(opset=17).opset == 17
    with pytest.raises(CKDError, match="opset 15 is not an export mode's: 17 .standard., 16 .trt85."):
        resolve_mode(opset=15)
    with pytest.raises(CKDError, match="uses opset 17, not 16"):
        resolve_mode("standard", 16)
