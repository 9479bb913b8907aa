"""The runtime path needs no torch (issue 13): a robot that deploys an ONNX file exported on a PC.

Each check runs in a subprocess whose `sitecustomize` (first on PYTHONPATH) installs a meta-path finder
that makes `torch` unimportable (ModuleNotFoundError, as on a machine without it) and logs every
attempt. The ONNX Runtime paths (`ckd track --onnx`, `ckd eval`, the node configured with the ONNX
Runtime backend) must not even try to import torch; `ckd --help` must list every command and
`ckd convert` must say in one line what to install.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path

REPO = Path(__file__).resolve().parents[1]
ONNX = REPO / "engines" / "demo_small.onnx"

BLOCKER = '''
import os
import sys


class _NoTorch:
    """Meta-path finder: `torch` does not exist here (each attempt is logged with its importer)."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            log = os.environ.get("CKD_TORCH_ATTEMPTS")
            if log:
                frame, where = sys._getframe(1), "?"
                while frame is not None:
                    fn = frame.f_code.co_filename
                    if "importlib" not in fn and "<frozen" not in fn and "sitecustomize" not in fn:
                        where = f"{fn}:{frame.f_lineno}"
                        break
                    frame = frame.f_back
                with open(log, "a") as f:
                    f.write(f"{name} from {where}\\n")
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by test_torch_free)", name=name)
        return None


sys.meta_path.insert(0, _NoTorch())
'''


@pytest.fixture()
def run_without_torch(tmp_path):
    site = tmp_path / "notorch"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    attempts = tmp_path / "torch_attempts.txt"

    def run(args, timeout=300):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
        env["CKD_TORCH_ATTEMPTS"] = str(attempts)
        env["OMP_NUM_THREADS"] = "1"
        proc = subprocess.run([sys.executable, *args], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                              timeout=timeout)
        tried = attempts.read_text() if attempts.exists() else ""
        if attempts.exists():
            attempts.unlink()
        return proc, tried

    return run


def test_blocker_really_blocks_torch(run_without_torch):
    proc, tried = run_without_torch(["-c", "import torch"])
    assert proc.returncode != 0 and "blocked by test_torch_free" in proc.stderr
    assert tried.startswith("torch from")


def test_ckd_help_lists_every_command_without_torch(run_without_torch):
    from ckd_ros.cli import SUBCOMMAND_MODULES

    proc, _ = run_without_torch(["-m", "ckd_ros.cli", "--help"])
    assert proc.returncode == 0, proc.stderr
    listed = [name for name in SUBCOMMAND_MODULES if f"    {name} " in proc.stdout or f"    {name}\n" in proc.stdout]
    present = [name for name, mod in SUBCOMMAND_MODULES.items()
               if (REPO / (mod.replace(".", "/") + ".py")).is_file()]
    assert listed == present, proc.stdout
    proc, _ = run_without_torch(["-m", "ckd_ros.cli", "convert", "a.pth.tar", "b.safetensors"])
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert "'torch'" in err[0] and "requirements/export.txt" in err[0]


def _write_sequence(root: Path, frames: int = 6) -> Path:
    """A short synthetic RGB-T sequence folder (visible/, infrared/, init.txt) and its boxes."""
    import cv2

    from ckd_ros.synthetic.dataset import plan, write_dataset

    (name,) = write_dataset(root, plan(sequences=1, seed_base=1000), num_frames=frames, size=(320, 256), log=None)
    seq = root / name
    assert cv2.imread(str(next((seq / "visible").iterdir()))) is not None
    return seq


def test_track_with_onnx_imports_no_torch(run_without_torch, tmp_path):
    seq = _write_sequence(tmp_path / "data")
    out = tmp_path / "boxes.txt"
    proc, tried = run_without_torch(["-m", "ckd_ros.cli", "track", "--onnx", str(ONNX), "--sequence", str(seq),
                                     "--backend", "onnxruntime", "--out", str(out), "--quiet"])
    assert proc.returncode == 0, proc.stderr
    assert tried == "", f"ckd track --onnx tried to import torch:\n{tried}"
    boxes = np.loadtxt(out, delimiter=",", ndmin=2) if "," in out.read_text() else np.loadtxt(out, ndmin=2)
    assert boxes.shape == (6, 4) and np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()


def test_eval_imports_no_torch(run_without_torch):
    fixture = shared_path("fixtures", "eval", "vtuav")
    proc, tried = run_without_torch(["-m", "ckd_ros.cli", "eval", "--dataset", "vtuav", "--root",
                                     str(fixture / "gt"), "--results", str(fixture / "results" / "SynthV1"), "--json"])
    assert proc.returncode == 0, proc.stderr
    assert tried == "", f"ckd eval tried to import torch:\n{tried}"
    assert '"MPR": 81.81' in proc.stdout and '"MSR": 62.77' in proc.stdout  # expected.json of the fixture


@pytest.mark.ros
def test_node_configures_with_onnxruntime_without_torch(run_without_torch):
    """The node module and its configure transition (open_backend with ONNX Runtime) need no torch."""
    domain = os.environ.get("CKD_TEST_DOMAIN_ID", "0")
    script = textwrap.dedent(f"""
        import os
        os.environ["ROS_DOMAIN_ID"] = {domain!r}
        import rclpy
        from rclpy.parameter import Parameter
        from lifecycle_msgs.msg import State
        from ckd_ros.node.tracker_node import CkdTrackerNode
        rclpy.init()
        node = CkdTrackerNode("ckd_torch_free", parameter_overrides=[
            Parameter("autostart", value=False), Parameter("backend", value="onnxruntime"),
            Parameter("model.onnx", value={str(ONNX)!r})])
        try:
            from rclpy.lifecycle import TransitionCallbackReturn
            result = node.trigger_configure()
            print("configure:", result.name)
        finally:
            node.destroy_node()
            rclpy.shutdown()
    """)
    proc, tried = run_without_torch(["-c", script])
    assert proc.returncode == 0, proc.stderr
    assert "configure: SUCCESS" in proc.stdout, proc.stdout + proc.stderr
    assert tried == "", f"the node tried to import torch:\n{tried}"
