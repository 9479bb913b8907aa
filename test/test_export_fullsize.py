"""Full-size ViT-B students (random weights): export, ONNX Runtime == PyTorch, TensorRT-RTX builds.

Slow (two ~700 MB exports and engine builds, ~1 min on 2 cores) but still part of CI.
"""
from __future__ import annotations

import gc
import importlib.util

import numpy as np
import onnx
import pytest
import torch

from ckd_ros.model import CKDConfig, CKDStudent
from ckd_ros.model.export import INPUT_NAMES, OUTPUT_NAMES, check_graph, example_inputs, export_onnx
from conftest import IN_CI, shared_path

pytestmark = pytest.mark.slow
TOL = 1e-4


def _run_ort(path, inputs):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = [dict(zip(names, sess.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, x)}))) for x in inputs]
    del sess
    return outs


def _build_rtx(path):
    if importlib.util.find_spec("tensorrt_rtx") is None:
        if IN_CI:
            pytest.fail("tensorrt_rtx missing in CI")
        return None
    from ckd_ros.runtime.trt_build import build_engine_bytes, import_tensorrt

    logs = []
    engine = build_engine_bytes(path, precision="fp32", trt=import_tensorrt("tensorrt_rtx"), log=logs.append)
    return len(engine), logs


@pytest.mark.parametrize("preset", ["vitb_mce", "vitb"])
def test_fullsize_export_parity_and_trt_rtx_build(tmp_path, preset):
    torch.manual_seed(0)
    model = CKDStudent(CKDConfig.preset(preset)).eval()
    mce = bool(model.config.ce_loc)
    path = tmp_path / f"{preset}.onnx"
    meta = export_onnx(model, path, debug_outputs=mce)  # mce: kept indices as extra outputs
    assert meta["keep_counts"] == ([180, 126, 89] if mce else [])
    proto = onnx.load(str(path), load_external_data=False)
    assert check_graph(proto, 17) == []
    from ckd_ros.runtime.onnx_ops import check_onnx_ops, load_table

    for version in ("8.6.1", "10.3.0"):  # the standard mode's TensorRT versions (8.5: test_export_trt_ops)
        assert check_onnx_ops(proto, load_table(shared_path("data", "tensorrt_onnx_ops"), version)) == []
    assert sum(n.op_type == "TopK" for n in proto.graph.node) == (3 if mce else 0)
    del proto
    inputs = [example_inputs(model.config, seed=s) for s in (11, 12)]
    with torch.no_grad():
        refs = [model(*x, return_extras=True) for x in inputs]
    del model
    gc.collect()
    outs = _run_ort(path, inputs)
    kept_sets = []
    for ref, got in zip(refs, outs):
        for name in OUTPUT_NAMES:
            err = float(np.abs(got[name] - ref[name].numpy()).max())
            assert err < TOL, (name, err)
        if mce:
            sets = [set(got[f"kept_idx_{j}"][0].tolist()) for j in range(3)]
            assert sets == [set(k[0].tolist()) for k in ref["kept_idx"]]
            assert [len(s) for s in sets] == [180, 126, 89]
            kept_sets.append(sets)
    if mce:
        assert kept_sets[0] != kept_sets[1]  # selection depends on the frame
    built = _build_rtx(path)
    if built is not None:
        size, logs = built
        assert size > 300 * 2**20  # two ViT-B branches in fp32 weigh ~690 MB
        assert any("done in" in m for m in logs)
