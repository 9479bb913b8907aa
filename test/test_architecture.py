"""The package import graph follows the layering of docs/architecture (issue 15, acceptance).

Every module of `ckd_ros` is parsed (ast, so function-level imports count as much as module-level
ones) and each import of another `ckd_ros` room is checked against the layers, bottom to top:

    errors, boxes, hashing, fileio, frames  <  model  <  runtime  <  synthetic  <  tracking  <  eval
    <  train  <  node  <  demo  <  cli

A room may import rooms below it (and itself), never one above it, and rooms must not import each
other in a cycle. Nothing outside `node/` and `demo/` imports rclpy or other ROS 2 Python packages
(the model, runtime, tracker, eval and training run where no ROS is installed).
"""
from __future__ import annotations

import ast
import pathlib
from typing import Dict, Iterator, List, Set, Tuple

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "ckd_ros"

LAYERS: List[Tuple[str, ...]] = [
    ("errors", "boxes", "hashing", "fileio", "frames", "__init__"),
    ("model",),
    ("runtime",),
    ("synthetic",),
    ("tracking",),
    ("eval",),
    ("train",),
    ("node",),
    ("demo",),
    ("cli",),
]
RANK: Dict[str, int] = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}
ROS_ROOMS = ("node", "demo")
# the ROS 2 client library and the packages that need it running (message classes alone are data:
# frames/ builds sensor_msgs/Image lazily for the bag writer and tests, duck-typed otherwise)
ROS_PACKAGES = ("rclpy", "message_filters", "diagnostic_updater", "launch_ros", "rosbag2_py", "tf2_ros")


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] if len(parts) > 1 else parts
    return ".".join(parts)


def room_of(module: str) -> str:
    """'ckd_ros.model.export' -> 'model'; 'ckd_ros.errors' -> 'errors'; 'ckd_ros' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: pathlib.Path) -> Iterator[Tuple[str, int]]:
    """(absolute module name, line) of every import in the file, at any depth (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, node.lineno
            for alias in node.names:  # `from ckd_ros import model` imports the room `model`
                name = alias.name
                if module == "ckd_ros" and ((PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()):
                    yield f"ckd_ros.{name}", node.lineno
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value, node.lineno  # importlib.import_module("ckd_ros....")


def package_files() -> List[pathlib.Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def room_edges() -> Dict[Tuple[str, str], List[str]]:
    """{(from room, to room): ['file:line', ...]} for imports between different rooms."""
    edges: Dict[Tuple[str, str], List[str]] = {}
    for path in package_files():
        src = room_of(_module_name(path))
        for module, line in imports_of(path):
            if module != "ckd_ros" and not module.startswith("ckd_ros."):
                continue
            dst = room_of(module)
            if dst != src:
                edges.setdefault((src, dst), []).append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    return edges


def test_every_room_has_a_layer():
    rooms = {room_of(_module_name(p)) for p in package_files()}
    assert rooms <= set(RANK), f"rooms without a layer (add them to LAYERS and architecture.md): {rooms - set(RANK)}"


def test_no_upward_imports():
    upward = [f"{src} -> {dst}: {', '.join(where)}" for (src, dst), where in sorted(room_edges().items())
              if RANK[dst] > RANK[src] or (RANK[dst] == RANK[src] and RANK[src] != 0)]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_no_cycles_between_rooms():
    graph: Dict[str, Set[str]] = {}
    for src, dst in room_edges():
        graph.setdefault(src, set()).add(dst)
    cycles = []

    def visit(node: str, stack: List[str], done: Set[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, stack + [nxt], done)
        done.add(node)

    done: Set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start], done)
    assert not cycles, "import cycles between rooms:\n" + "\n".join(sorted(set(cycles)))


def test_ros_is_imported_only_by_node_and_demo():
    offenders = []
    for path in package_files():
        if room_of(_module_name(path)) in ROS_ROOMS:
            continue
        for module, line in imports_of(path):
            if module.split(".")[0] in ROS_PACKAGES:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not offenders, "ROS imports below node/:\n" + "\n".join(offenders)


def test_the_walker_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    """The check has teeth: an import hidden in a function or written relatively is found."""
    pkg = tmp_path / "ckd_ros"
    pkg.mkdir()
    for room in ("tracking", "node", "eval"):
        (pkg / room).mkdir(exist_ok=True)
        (pkg / room / "__init__.py").write_text("")
    (pkg / "tracking" / "late.py").write_text(
        "def f():\n    import rclpy\n    from ..node import tracker_node\n    from ckd_ros import eval\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    found = {m for m, _ in imports_of(pkg / "tracking" / "late.py")}
    assert {"rclpy", "ckd_ros.node", "ckd_ros.eval"} <= found
    edges = room_edges()
    assert ("tracking", "node") in edges and ("tracking", "eval") in edges


def test_runtime_path_imports_no_torch(tmp_path):
    """`ckd --help` and `ckd track --onnx` (ONNX Runtime) run on robots without torch: they never import it."""
    import subprocess
    import sys

    repo = PACKAGE.parent
    code = f"""
import sys
from ckd_ros.cli import main
from ckd_ros.synthetic.dataset import plan, write_dataset
name = write_dataset({str(tmp_path)!r}, plan(1, seed_base=5), num_frames=3, size=(160, 128), log=None)[0]
assert "torch" not in sys.modules, "synthetic data generation imported torch"
try:
    main(["--help"])
except SystemExit:
    pass
assert "torch" not in sys.modules, "ckd --help imported torch"
onnx = {str(repo / "engines" / "demo_small.onnx")!r}
rc = main(["track", "--sequence", {str(tmp_path)!r} + "/" + name, "--onnx", onnx,
           "--backend", "onnxruntime", "--quiet", "--out", {str(tmp_path / "r.txt")!r}])
assert rc == 0, rc
heavy = [m for m in ("torch", "rclpy") if m in sys.modules]
assert not heavy, heavy
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, timeout=300,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
