"""Checkpoint loading: official container, strictness, safety, conversion."""
import io
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from ckd_ros.errors import CKDError
from ckd_ros.model import CKDConfig, CKDStudent, load_checkpoint, save_converted
from ckd_ros.model.checkpoint import read_state_dict
from conftest import shared_path

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = CKDConfig(embed_dim=16, depth=4, num_heads=2, head_channels=8, ce_loc=(1, 2), ce_keep_ratio=(0.7, 0.7))


def test_official_container_keeps_only_student_keys():
    sd, stored, _ = read_state_dict(shared_path("fixtures", "ckd_parity", "mce.pth"))
    assert stored is None
    assert len(sd) == 394
    assert not any(k.startswith(("teacher_", "box_head_v", "box_head_i")) for k in sd)


def test_plain_torch_load_refuses_official_file():
    """The reason for the restricted unpickler: weights_only loading fails on the release files."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(shared_path("fixtures", "ckd_parity", "noce.pth"), weights_only=True)


def test_plain_state_dict_and_converted_roundtrip(tmp_path):
    model = CKDStudent(TINY).eval()
    plain = tmp_path / "plain.pth"
    torch.save(model.state_dict(), plain)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"net": model.state_dict(), "epoch": 3}, wrapped)
    converted = tmp_path / "tiny.safetensors"
    save_converted(model, converted, source_sha256="abc")
    x = [torch.randn(1, 3, 128, 128), torch.randn(1, 3, 128, 128), torch.randn(1, 3, 256, 256),
         torch.randn(1, 3, 256, 256)]
    with torch.no_grad():
        ref = model(*x)["score_map"]
        for path, cfg in ((plain, TINY), (wrapped, TINY), (converted, None)):
            loaded = load_checkpoint(path, cfg)
            assert loaded.config == TINY
            assert torch.equal(loaded(*x)["score_map"], ref), path


def test_converted_file_contains_no_pickle(tmp_path):
    out = tmp_path / "m.safetensors"
    save_converted(CKDStudent(TINY), out)
    raw = out.read_bytes()
    assert b"\x80\x04" not in raw[:64] and raw[8:9] == b"{"


def test_missing_key_is_named(tmp_path):
    sd = CKDStudent(TINY).state_dict()
    del sd["tir_branch.blocks.2.attn.qkv.weight"]
    path = tmp_path / "missing.pth"
    torch.save(sd, path)
    with pytest.raises(CKDError, match=r"missing keys \[1\]: tir_branch\.blocks\.2\.attn\.qkv\.weight"):
        load_checkpoint(path, TINY)


def test_wrong_shape_is_named(tmp_path):
    sd = CKDStudent(TINY).state_dict()
    sd["box_head.conv5_size.weight"] = torch.zeros(3, 1, 1, 1)
    path = tmp_path / "shape.pth"
    torch.save(sd, path)
    with pytest.raises(CKDError, match=r"wrong shapes.*box_head\.conv5_size\.weight: file \(3, 1, 1, 1\)"):
        load_checkpoint(path, TINY)


class _Exploit:
    """Unpickling this runs a shell command (the classic malicious-checkpoint payload)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth.tar"
    torch.save({"net": CKDStudent(TINY).state_dict(), "settings": _Exploit(marker)}, path)
    with pytest.raises(CKDError, match=r"refusing to load '(posix|os)\.system'"):
        load_checkpoint(path, TINY)
    assert not marker.exists()


def test_malicious_pickle_builtins_eval_refused(tmp_path):
    buf = io.BytesIO()
    buf.write(b"cbuiltins\neval\n(S'1+1'\ntR.")
    path = tmp_path / "evil_raw.pth"
    path.write_bytes(buf.getvalue())
    with pytest.raises(CKDError):
        load_checkpoint(path, TINY)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CKDError, match="cannot read"):
        load_checkpoint(path, TINY)
    with pytest.raises(CKDError, match="not found"):
        load_checkpoint(tmp_path / "nope.pth", TINY)


def test_convert_cli(tmp_path):
    out = tmp_path / "mce.safetensors"
    src = shared_path("fixtures", "ckd_parity", "mce.pth")
    cmd = [sys.executable, "-m", "ckd_ros.cli", "convert", str(src), str(out), "--preset", "parity_mce"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    model = load_checkpoint(out)
    assert model.config.name == "parity_mce"
    io_ = np.load(shared_path("fixtures", "ckd_parity", "mce_io.npz"))
    with torch.no_grad():
        out_maps = model(*(torch.from_numpy(io_[k][:1]) for k in
                           ("template_rgb", "template_tir", "search_rgb", "search_tir")))
    np.testing.assert_allclose(out_maps["score_map"].numpy(), io_["score_map"][:1], rtol=1e-5, atol=1e-5)


def test_convert_cli_bad_input_one_line(tmp_path):
    cmd = [sys.executable, "-m", "ckd_ros.cli", "convert", str(tmp_path / "missing.pth"), str(tmp_path / "o")]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "checkpoint not found" in res.stderr


def test_training_checkpoint_carries_its_config(tmp_path):
    """Our trainer stores `ckd_config` beside `net`: any model size loads with no preset."""
    model = CKDStudent(TINY)
    path = tmp_path / "CKD_ep0001.pth.tar"
    torch.save({"net": model.state_dict(), "epoch": 1, "ckd_config": TINY.to_dict()}, path)
    loaded = load_checkpoint(path)
    assert loaded.config == TINY
