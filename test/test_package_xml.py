"""package.xml resolves with `rosdep install` on Humble and Jazzy (issue 13).

Every dependency must be a ROS package released into the distribution or a rosdep system key, else
`rosdep install` fails before it installs anything. The lists are `../shared/data/rosdep/` (from
ros/rosdistro). Also: every ROS package the code imports is declared, and the documented headless
`--skip-keys` set names only declared, optional keys.
"""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import shared_path

REPO = Path(__file__).resolve().parents[1]
DEPEND_TAGS = ("depend", "build_depend", "buildtool_depend", "build_export_depend", "exec_depend",
               "test_depend", "doc_depend", "buildtool_export_depend")
# What a robot needs to run the node and `ckd track`/`ckd eval --json`: never in a skip set.
RUNTIME_KEYS = {"rclpy", "lifecycle_msgs", "message_filters", "sensor_msgs", "vision_msgs", "std_srvs",
                "diagnostic_msgs", "launch", "launch_ros", "python3-numpy", "python3-opencv", "python3-yaml"}


def _dependencies() -> dict[str, str]:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    return {el.text.strip(): el.tag for tag in DEPEND_TAGS for el in root.iter(tag)}


def _lines(path: Path) -> set[str]:
    return {ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")}


@pytest.fixture(scope="module")
def system_keys() -> set[str]:
    return _lines(shared_path("data", "rosdep", "system_keys.txt"))


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_every_dependency_resolves(distro, system_keys):
    released = _lines(shared_path("data", "rosdep", f"{distro}_packages.txt"))
    deps = _dependencies()
    assert "rclpy" in deps
    unknown = sorted(k for k in deps if k not in released and k not in system_keys)
    assert not unknown, f"not a released {distro} package nor a rosdep key: {unknown}"


def _imported_top_modules(paths) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_imported_ros_packages_are_declared(distro):
    """A ROS package imported by the package or its launch files (not tests) is an exec_depend."""
    released = _lines(shared_path("data", "rosdep", f"{distro}_packages.txt"))
    code = list((REPO / "ckd_ros").rglob("*.py")) + list((REPO / "launch").glob("*.py"))
    imported = {m for m in _imported_top_modules(code) if m in released}
    assert {"rclpy", "sensor_msgs", "vision_msgs"} <= imported  # the scan sees the node's imports
    deps = _dependencies()
    missing = sorted(m for m in imported if deps.get(m) not in ("exec_depend", "depend"))
    assert not missing, f"imported but not an exec_depend in package.xml: {missing}"


def test_documented_skip_keys_are_optional_dependencies():
    """The headless `rosdep install --skip-keys "..."` in README/docs names declared, optional keys."""
    deps = _dependencies()
    found = []
    for doc in (REPO / "README.md", REPO / "docs" / "ros.md"):
        for keys in re.findall(r'--skip-keys\s+"([^"]+)"', doc.read_text()):
            found.append((doc.name, keys.split()))
    assert found, "README.md / docs/ros.md document no --skip-keys set for headless robots"
    for doc, keys in found:
        assert {"rviz2", "python3-matplotlib"} <= set(keys), doc
        assert not set(keys) - set(deps), f"{doc}: skip keys not in package.xml: {set(keys) - set(deps)}"
        assert not set(keys) & RUNTIME_KEYS, f"{doc}: skips what the node needs: {set(keys) & RUNTIME_KEYS}"
