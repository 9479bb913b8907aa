"""Does a TensorRT parser accept the exported graph? CI has no GPU, so TensorRT-RTX (which parses and
builds ahead of time on a CPU) is the check. The full-size graphs are in test_export_fullsize.py."""
from __future__ import annotations

import importlib.util
import warnings

import pytest
import torch

from ckd_ros.errors import CKDError
from ckd_ros.model import CKDConfig, CKDStudent, load_checkpoint
from ckd_ros.model.export import export_onnx
from ckd_ros.runtime.trt_build import build_engine_bytes, import_tensorrt
from conftest import IN_CI, shared_path


@pytest.fixture(scope="module")
def trt_rtx():
    if importlib.util.find_spec("tensorrt_rtx") is None:
        if IN_CI:
            pytest.fail("tensorrt_rtx missing: it is in requirements/dev.txt and CI must have it")
        pytest.skip("tensorrt_rtx not installed (pip install tensorrt-rtx-cu12)")
    return import_tensorrt("tensorrt_rtx")


def _parse_io(trt, onnx_path):
    from ckd_ros.runtime.trt_build import parse_onnx

    logger = trt.Logger(trt.Logger.ERROR)
    network, _ = parse_onnx(trt, trt.Builder(logger), logger, onnx_path)
    ins = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    outs = {network.get_output(i).name: tuple(network.get_output(i).shape) for i in range(network.num_outputs)}
    return ins, outs


@pytest.mark.parametrize("name", ["noce", "mce"])
def test_parity_models_parse_and_build(trt_rtx, tmp_path, name):
    model = load_checkpoint(shared_path("fixtures", "ckd_parity", f"{name}.pth"), CKDConfig.preset(f"parity_{name}"))
    onnx_path = tmp_path / f"{name}.onnx"
    export_onnx(model, onnx_path)
    ins, outs = _parse_io(trt_rtx, onnx_path)
    assert ins == {"z_rgb": (1, 3, 128, 128), "z_tir": (1, 3, 128, 128), "x_rgb": (1, 3, 256, 256),
                   "x_tir": (1, 3, 256, 256)}
    assert outs == {"score_map": (1, 1, 16, 16), "size_map": (1, 2, 16, 16), "offset_map": (1, 2, 16, 16)}
    logs = []
    engine = build_engine_bytes(onnx_path, precision="fp32", workspace_mb=512, trt=trt_rtx, log=logs.append)
    assert len(engine) > 100_000
    assert any("done in" in m for m in logs) and any(m.startswith("engine build: ") for m in logs)


def test_demo_model_builds_through_the_cache(trt_rtx, tmp_path):
    """The CLI path CI uses: `ckd build-engine --trt-module tensorrt_rtx --build-only`."""
    from ckd_ros.cli import main

    torch.manual_seed(0)
    onnx_path = tmp_path / "demo.onnx"
    export_onnx(CKDStudent(CKDConfig.demo_small()).eval(), onnx_path)
    args = ["build-engine", "--onnx", str(onnx_path), "--trt-module", "tensorrt_rtx", "--build-only",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    engines = list((tmp_path / "cache" / "engines").glob("*.engine"))
    assert len(engines) == 1 and "fp32" in engines[0].name and "tensorrt_rtx" in engines[0].name
    mtime = engines[0].stat().st_mtime_ns
    assert main(args) == 0  # second run: cached, not rebuilt
    assert engines[0].stat().st_mtime_ns == mtime


def test_parser_rejects_data_dependent_shapes(trt_rtx, tmp_path):
    """The check has teeth: a boolean-mask gather (NonZero) is refused with a clear error."""

    class Masked(torch.nn.Module):
        def forward(self, x):
            return x[x > 0].sum().reshape(1)

    path = tmp_path / "masked.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Masked(), (torch.randn(1, 8),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
    with pytest.raises(CKDError, match="could not parse|failed to build"):
        build_engine_bytes(path, trt=trt_rtx, log=lambda m: None)


def test_fp16_on_a_strongly_typed_tensorrt_is_a_clear_error(trt_rtx, tmp_path):
    torch.manual_seed(0)
    onnx_path = tmp_path / "demo.onnx"
    export_onnx(CKDStudent(CKDConfig.demo_small()).eval(), onnx_path)
    with pytest.raises(CKDError, match="FP16"):
        build_engine_bytes(onnx_path, precision="fp16", trt=trt_rtx, log=lambda m: None)
