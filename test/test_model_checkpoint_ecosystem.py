"""Checkpoints from the wider tracking ecosystem (issue 11, kind 6) and the one checkpoint reader (issue 15).

pytracking/OSTrack-style trainers store NumPy scalars and arrays beside the weights (loss meters,
epoch counters, normalisation constants). Those are data: `load_checkpoint`, `ckd convert` and the
training initialisation load them through the one reader. Everything that can run code stays refused,
and the refusal names the global and what to do instead (not the command that refuses it too).
"""
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from ckd_ros.errors import CheckpointError
from ckd_ros.model import CKDConfig, CKDStudent, load_checkpoint
from ckd_ros.model.checkpoint import filter_state_dict, read_checkpoint, read_state_dict
from ckd_ros.model.safe_pickle import RefusedGlobal, Unpickler

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = CKDConfig(embed_dim=16, depth=2, num_heads=2, head_channels=8, name="tiny")

NUMPY_SIDE_DATA = {
    "stats": {"train": {"Loss/total": {"val": np.float64(0.42), "avg": np.float32(0.5), "count": np.int64(6000)}},
              "valid": {"IoU": np.array([0.1, 0.2, 0.7])}},
    "epoch": np.int64(10),
    "flags": np.bool_(True),
    "mean": np.array([0.485, 0.456, 0.406], dtype=np.float32),
    "names": np.array(["lasher", "rgbt234"]),
    "record": np.array([(1, 2.5)], dtype=[("id", "<i4"), ("score", "<f8")]),
    "dtype": np.dtype("float16"),
    "dtype_class": type(np.dtype("float64")),
    "complex": np.complex128(1 + 2j),
}


@pytest.mark.parametrize("protocol", [2, 4])
def test_numpy_side_data_loads_as_data(tmp_path, protocol):
    model = CKDStudent(TINY).eval()
    path = tmp_path / "CKD_ep0010.pth.tar"
    torch.save({"net": model.state_dict(), "net_type": "OSTrack_CKD", **NUMPY_SIDE_DATA}, path,
               pickle_protocol=protocol)
    loaded = load_checkpoint(path, TINY)
    ref = model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())
    # the side data itself comes back as the same values through the restricted unpickler
    from ckd_ros.model.checkpoint import _safe_pickle_module
    obj = torch.load(path, weights_only=False, pickle_module=_safe_pickle_module())
    assert obj["stats"]["train"]["Loss/total"]["count"] == 6000 and isinstance(obj["epoch"], np.int64)
    np.testing.assert_array_equal(obj["stats"]["valid"]["IoU"], [0.1, 0.2, 0.7])
    assert obj["record"]["score"][0] == 2.5 and list(obj["names"]) == ["lasher", "rgbt234"]
    assert obj["dtype"] == np.float16 and obj["dtype_class"] is type(np.dtype("float64"))


def test_numpy_1x_module_names_load(tmp_path):
    """Files written under NumPy 1.x name numpy.core.multiarray (2.x: numpy._core): both load."""
    data = pickle.dumps({"v": np.float64(0.25), "a": np.arange(3)}, protocol=2)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in old
    import io
    for blob in (data, old):
        obj = Unpickler(io.BytesIO(blob)).load()
        assert obj["v"] == 0.25 and list(obj["a"]) == [0, 1, 2]


@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"), ("numpy", "load"),
                                          ("numpy.testing", "measure"), ("numpy.dtypes", "StringDType_"),
                                          ("subprocess", "Popen"), ("torch", "load")])
def test_code_stays_refused_and_the_message_says_what_to_do(module, name):
    with pytest.raises(RefusedGlobal) as info:
        Unpickler(__import__("io").BytesIO(b"")).find_class(module, name)
    msg = str(info.value)
    assert f"'{module}.{name}'" in msg and "\n" not in msg
    assert "torch.save({'net': model.state_dict()}" in msg
    assert "ckd convert" not in msg  # convert uses the same unpickler: it is not a way out


def test_ckd_convert_loads_numpy_side_data(tmp_path):
    path = tmp_path / "with_stats.pth.tar"
    torch.save({"net": CKDStudent(TINY).state_dict(), "ckd_config": TINY.to_dict(), **NUMPY_SIDE_DATA}, path)
    out = tmp_path / "out.safetensors"
    res = subprocess.run([sys.executable, "-m", "ckd_ros.cli", "convert", str(path), str(out)],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert load_checkpoint(out).config.embed_dim == 16


def test_one_reader_for_deployment_and_training(tmp_path):
    """read_state_dict (deployment) is read_checkpoint (training init) restricted to the student keys."""
    full = {"backbone.blocks.0.attn.qkv.weight": torch.zeros(3), "rgb_branch.norm.weight": torch.ones(2),
            "box_head.conv5_ctr.weight": torch.ones(1), "box_head_v.conv5_ctr.weight": torch.ones(1)}
    for container in ("net", "state_dict", "model"):
        path = tmp_path / f"{container}.pth"
        torch.save({container: {f"module.{k}": v for k, v in full.items()}, "epoch": np.int64(3)}, path)
        sd, stored, meta = read_checkpoint(path)
        assert set(sd) == set(full) and stored is None and meta == {}
        student, _, _ = read_state_dict(path)
        assert set(student) == {"rgb_branch.norm.weight", "box_head.conv5_ctr.weight"}
    with pytest.raises(CheckpointError, match="holds no state dict"):
        filter_state_dict({"epoch": 3}, "x.pth")


def test_training_init_uses_the_one_reader():
    import inspect

    from ckd_ros.train import weights
    source = inspect.getsource(weights)
    assert "read_checkpoint" in source and "torch.load" not in source and "_safe_pickle_module" not in source
