"""Shared test helpers.

- `shared_path(...)`: data under ../shared. Missing data fails in CI (CI=true) and skips elsewhere.
- `gpu` marker: skipped with a printed reason where no NVIDIA GPU / TensorRT is present.
- `ros` marker: skipped with a reason where rclpy is not importable (CI always has it: the set-up
  installs the ROS 2 runtime wheel), and fails in CI if it is missing.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("CKD_SHARED", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def shared_path(*parts: str) -> pathlib.Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        msg = f"shared data missing: {path} (set CKD_SHARED or put ../shared beside the repo)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def require_module(name: str, install: str) -> None:
    """Skip when an optional dependency is missing; fail in CI's dev venv (it has torch: requirements/dev.txt
    installs everything), skip in the robot venvs (requirements/robot.txt, no torch, no optional extras)."""
    if importlib.util.find_spec(name) is None:
        msg = f"{name} not installed ({install})"
        if IN_CI and importlib.util.find_spec("torch") is not None:
            pytest.fail(msg)
        pytest.skip(msg, allow_module_level=True)


# Test modules that import torch (or ckd_ros.model / ckd_ros.train) at import time. Where torch is not
# installed (the robot-Python CI jobs: requirements/robot.txt, no torch) they are not collected;
# single torch tests in other modules carry the `torch` marker (deselected there with -m "not torch").
TORCH_MODULES = ("test_model_*.py", "test_export_*.py", "test_train_*.py", "test_runtime_backends.py",
                 "test_runtime_quantize.py",  # ckd quantize is a PC tool: onnx + the exporter's graph check (torch)
                 "test_runtime_tensorrt_gpu.py")
collect_ignore_glob = [] if importlib.util.find_spec("torch") else list(TORCH_MODULES)


def _gpu_reason() -> str | None:
    try:
        from ckd_ros.runtime.gpu import probe_gpu
    except Exception as exc:  # runtime package not importable
        return f"GPU probe unavailable: {exc}"
    info = probe_gpu()
    if not info.available:
        return f"no NVIDIA GPU: {info.reason}"
    return None


def pytest_collection_modifyitems(config, items):
    gpu_items = [i for i in items if "gpu" in i.keywords]
    if gpu_items:
        reason = _gpu_reason()
        if reason:
            for item in gpu_items:
                item.add_marker(pytest.mark.skip(reason=reason))
    ros_items = [i for i in items if "ros" in i.keywords]
    # In CI rclpy must be there (the set-up installs it): let those tests fail loudly instead.
    if ros_items and not IN_CI and importlib.util.find_spec("rclpy") is None:
        msg = "rclpy not importable: source ROS 2 or run via scripts/test.sh (sets up the ROS 2 wheel)"
        for item in ros_items:
            item.add_marker(pytest.mark.skip(reason=msg))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waits on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tracker_seq():
    """The official tracker run of ../shared/fixtures/ckd_parity/tracker_seq.npz, as plain arrays."""
    import numpy as np

    with np.load(shared_path("fixtures", "ckd_parity", "tracker_seq.npz")) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def ctx():
    """Node tests: one rclpy context (own DDS domain, test_node_support.domain_id) per test module."""
    from test_node_support import make_context, shutdown_context

    context = make_context()
    yield context
    shutdown_context(context)


@pytest.fixture
def make_harness(ctx):
    """Node tests: make_harness(**Harness kwargs) -> a running tracker + client, closed after the test."""
    from test_node_support import Harness

    made = []

    def make(**kwargs):
        h = Harness(ctx, **kwargs)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()

