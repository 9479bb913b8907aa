"""requirements/ by use (issue 13): what a robot installs never replaces apt's numpy, OpenCV, pytest or
setuptools, and pulls no torch; the dev set is fully pinned with x86-only wheels marked.

Resolution itself is checked where pip runs: scripts/robot_env.sh installs robot.txt with the
constraints in the robot CI jobs and asserts the result (no torch, numpy < 2, OpenCV 4.5 kept).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

REQ = Path(__file__).resolve().parents[1] / "requirements"
APT_OWNED = {"numpy", "opencv-python", "opencv-python-headless", "opencv-contrib-python",
             "opencv-contrib-python-headless", "pytest", "setuptools", "torch", "tensorrt"}
ENVIRONMENTS = [{"python_version": v, "platform_machine": m} for v in ("3.8", "3.10", "3.12")
                for m in ("x86_64", "aarch64")]


def read(name: str) -> list:
    """Requirement objects of a requirements file, following `-r` includes."""
    out = []
    for line in (REQ / name).read_text().splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            out += read(line[3:].strip())
            continue
        out.append(Requirement(line))
    return out


def applies(req: Requirement, env: dict) -> bool:
    return req.marker is None or req.marker.evaluate(env)


@pytest.mark.parametrize("name", ["robot.txt", "jetson.txt"])
def test_robot_files_leave_apt_packages_alone(name):
    reqs = read(name)
    assert any(r.name == "onnxruntime" for r in reqs)
    assert not [r.name for r in reqs if r.name.lower() in APT_OWNED]
    for env in ENVIRONMENTS:  # exactly one onnxruntime line for each Python
        assert sum(r.name == "onnxruntime" and applies(r, env) for r in reqs) == 1, env


def test_jetson_cuda_python_matches_the_jetpack_cuda_major():
    for env in ENVIRONMENTS:
        (cuda,) = [r for r in read("jetson.txt") if r.name == "cuda-python" and applies(r, env)]
        major = "11" if env["python_version"] == "3.8" else "12"  # JetPack 5: CUDA 11.4; JetPack 6: 12.x
        assert cuda.specifier.contains(f"{major}.8") and not cuda.specifier.contains(f"{int(major) + 1}.0"), env


def test_ros_constraints_keep_numpy_1_setuptools_opencv_pytest():
    cons = read("ros-constraints.txt")
    for env in ENVIRONMENTS:
        numpy = [r for r in cons if r.name == "numpy" and applies(r, env)]
        assert numpy and all(not r.specifier.contains("2.0.0") for r in numpy), env
        assert any(r.specifier.contains("1.21.6") for r in numpy), env  # onnxruntime's floor stays allowed
    jammy = [r for r in cons if r.name == "numpy" and applies(r, {"python_version": "3.10"})]
    assert all(not r.specifier.contains("1.26.4") for r in jammy)  # Humble / JetPack 6: stay on 1.21
    (setuptools,) = [r for r in cons if r.name == "setuptools"]
    assert setuptools.specifier.contains("59.6.0") and not setuptools.specifier.contains("80.0")
    forbidden = {r.name for r in cons if not any(r.specifier.contains(v) for v in ("1.0", "4.5.4.60", "8.4.2"))}
    assert {"opencv-python", "opencv-python-headless", "opencv-contrib-python", "pytest"} <= forbidden


def test_dev_set_is_pinned_and_marks_x86_only_wheels():
    reqs = read("dev.txt")
    assert {"torch", "onnxruntime", "pytest", "numpy"} <= {r.name for r in reqs}
    unpinned = [str(r) for r in reqs if len(r.specifier) != 1 or next(iter(r.specifier)).operator != "=="]
    assert not unpinned
    for r in reqs:
        if r.name.startswith("tensorrt"):  # no aarch64 libraries
            assert applies(r, {"platform_machine": "x86_64"}) and not applies(r, {"platform_machine": "aarch64"})
    legacy = REQ.parent / "requirements.txt"
    if legacy.exists():
        assert legacy.read_text() == (REQ / "dev.txt").read_text(), "requirements.txt diverged from dev.txt"
