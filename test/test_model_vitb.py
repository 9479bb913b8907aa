"""The full-size ViT-B student: exact key set and shapes of the authors' deployed model."""
import pathlib

import pytest
import torch

from ckd_ros.model import CKDConfig, CKDStudent, load_checkpoint
from conftest import shared_path


def _expected_keys():
    path = shared_path("design", "ckd-state-dict-keys.txt")
    keys = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")[:2]
        if name.startswith(("rgb_branch.", "tir_branch.", "box_head.")):
            keys[name] = tuple(int(s) for s in shape.strip("[]").split(",") if s.strip())
    return keys


@pytest.fixture(scope="module")
def vitb_mce():
    return CKDStudent(CKDConfig.vitb_mce())


def test_exact_student_keys_and_shapes(vitb_mce):
    expected = _expected_keys()
    assert len(expected) == 394
    ours = {k: tuple(v.shape) for k, v in vitb_mce.state_dict().items()}
    assert ours == expected


def test_parameter_count(vitb_mce):
    # 183,874,245 stored numbers minus 270 int64 num_batches_tracked... counted as parameters only:
    params = sum(p.numel() for p in vitb_mce.parameters())
    buffers = sum(b.numel() for n, b in vitb_mce.named_buffers() if "num_batches" not in n)
    assert params + buffers == 183_874_245


def test_state_dict_with_authors_keys_loads_strictly(tmp_path, vitb_mce):
    sd = {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in vitb_mce.state_dict().items()}
    # teacher keys ride along in official files and must be ignored
    sd["teacher_rgb.norm.weight"] = torch.ones(768)
    sd["box_head_v.conv5_ctr.bias"] = torch.zeros(1)
    path = pathlib.Path(tmp_path) / "vitb.pth"
    torch.save({"net": sd}, path)
    model = load_checkpoint(path)  # shapes of a ViT-B file select the deployed vitb_mce preset
    assert model.config == CKDConfig.vitb_mce()
    assert torch.equal(model.state_dict()["tir_branch.blocks.11.mlp.fc2.weight"],
                       sd["tir_branch.blocks.11.mlp.fc2.weight"])


@pytest.mark.slow
def test_full_size_forward_shapes(vitb_mce):
    torch.set_num_threads(2)
    z = torch.randn(1, 3, 128, 128)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        out = vitb_mce.eval()(z, z, x, x, return_extras=True)
    assert out["score_map"].shape == (1, 1, 16, 16)
    assert out["size_map"].shape == (1, 2, 16, 16)
    assert out["offset_map"].shape == (1, 2, 16, 16)
    assert [k.shape[1] for k in out["kept_idx"]] == [180, 126, 89]
    assert torch.equal(out["kept_idx"][2], out["kept_idx_tir"][2])
