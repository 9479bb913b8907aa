"""Training model: 878-key layout, masked modelling where specified, shared MCE selection, init paths."""
import pickle
import sys
import types

import pytest
import torch

from ckd_ros.errors import CKDError
from ckd_ros.model import CKDConfig
from ckd_ros.model.checkpoint import read_checkpoint
from ckd_ros.model.vit import ViTBranch
from ckd_ros.train.masking import search_keep_mask, step_generator
from ckd_ros.train.model import CKDTrainingModel
from ckd_ros.train.weights import (
    init_from_single_modal,
    init_students_from_teachers,
    random_init_,
    resize_grid_embed,
)

TINY = CKDConfig(embed_dim=16, depth=2, num_heads=2, head_channels=8, template_size=64, search_size=128,
                 ce_loc=(1,), ce_keep_ratio=(0.7,), name="tiny")
NOCE = TINY.replace(ce_loc=(), ce_keep_ratio=())


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _inputs(seed=0, batch=2):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 64, 64, generator=g), torch.randn(batch, 3, 64, 64, generator=g),
            torch.randn(batch, 3, 128, 128, generator=g), torch.randn(batch, 3, 128, 128, generator=g)]


def _model(config=NOCE, seed=0):
    model = CKDTrainingModel(config)
    random_init_(model, seed)
    return model.eval()


def test_state_dict_has_the_authors_layout():
    # ViT-B depth with a narrow width: the same 878 names without allocating 1.5 GB of weights
    keys = list(CKDTrainingModel(CKDConfig(embed_dim=16, num_heads=2, head_channels=8)).state_dict())
    assert len(keys) == 878
    prefixes = []
    for k in keys:
        p = k.split(".")[0]
        if not prefixes or prefixes[-1] != p:
            prefixes.append(p)
    assert prefixes == ["rgb_branch", "tir_branch", "box_head", "teacher_rgb", "teacher_tir", "box_head_v",
                        "box_head_i"]
    listed = [line.split()[0] for line in open(_keys_file()) if line.strip() and not line.startswith("#")]
    assert sorted(keys) == sorted(listed)  # same keys (the order inside a branch is model/'s business)


def _keys_file():
    from conftest import shared_path
    return shared_path("design", "ckd-state-dict-keys.txt")


def test_keep_mask_statistics_and_determinism():
    m = search_keep_mask(64, 256, 0.25, step_generator(42, 0, 7))
    assert m.shape == (64, 256, 1) and set(m.unique().tolist()) <= {0.0, 1.0}
    assert 0.70 < m.mean().item() < 0.80  # about 25 % dropped, count not fixed
    assert len({int(row.sum()) for row in m}) > 1  # independent per sample
    assert torch.equal(m, search_keep_mask(64, 256, 0.25, step_generator(42, 0, 7)))
    assert not torch.equal(m, search_keep_mask(64, 256, 0.25, step_generator(42, 1, 7)))
    assert search_keep_mask(4, 256, 0.0) is None


def test_mask_reaches_both_students_only(monkeypatch):
    seen = []
    original = ViTBranch.embed

    def spy(self, z, x, keep_x=None):
        seen.append((self, keep_x))
        return original(self, z, x, keep_x)

    monkeypatch.setattr(ViTBranch, "embed", spy)
    model = _model()
    keep = search_keep_mask(2, 64, 0.25, step_generator(0, 0, 0))
    model(*_inputs(), keep_x=keep)
    by_branch = {id(b): k for b, k in seen}
    assert by_branch[id(model.teacher_rgb)] is None and by_branch[id(model.teacher_tir)] is None
    assert by_branch[id(model.rgb_branch)] is keep and by_branch[id(model.tir_branch)] is keep


def test_mask_applies_to_search_patch_embeddings_before_the_position_embedding():
    model = _model()
    z, _, x, _ = _inputs()
    zero = torch.zeros(2, 64, 1)
    tokens = model.rgb_branch.embed(z, x, zero)
    # a masked search patch is the bare position embedding; template tokens are untouched
    assert torch.equal(tokens[:, 16:], model.rgb_branch.pos_embed_x.expand(2, -1, -1))
    assert torch.equal(tokens[:, :16], model.rgb_branch.embed(z, x)[:, :16])
    # fully masked students ignore the search images, teachers do not
    inputs, other = _inputs(0), _inputs(1)
    changed = [inputs[0], inputs[1], other[2], other[3]]
    a, b = model(*inputs, keep_x=zero), model(*changed, keep_x=zero)
    assert torch.equal(a["student"]["score_map"], b["student"]["score_map"])
    assert not torch.equal(a["teacher_rgb"]["score_map"], b["teacher_rgb"]["score_map"])
    # ... but they still see the template (never masked)
    c = model(other[0], other[1], inputs[2], inputs[3], keep_x=zero)
    assert not torch.equal(a["student"]["score_map"], c["student"]["score_map"])


def test_training_ce_prunes_all_branches_with_the_students_selection():
    model = _model(TINY)
    out = model(*_inputs())
    for name in ("teacher_rgb", "teacher_tir", "rgb_branch", "tir_branch"):
        blocks = out["blocks"][name]
        assert blocks[0].shape[1] == 16 + 64 and blocks[1].shape[1] == 16 + 45  # ceil(0.7 * 64)
    # the students' maps alone decide: teachers follow the same kept positions as the deployed student
    student = model.export_student(TINY)
    ref = student(*_inputs(), return_extras=True)
    assert torch.equal(ref["score_map"], out["student"]["score_map"])


def test_teachers_stage_runs_only_the_teachers():
    out = _model()(*_inputs(), parts=("teachers",))
    assert set(out) == {"teacher_rgb", "teacher_tir", "blocks"} and set(out["blocks"]) == {"teacher_rgb",
                                                                                          "teacher_tir"}


def _fake_ostrack_checkpoint(path, config, grid_z, grid_x, temporal=True):
    """A DropTrack-like single-modal file: backbone.* with other pos-embed grids, a pickled settings
    object from the authors' `lib` package (needs the restricted unpickler)."""
    torch.manual_seed(3)
    vit = ViTBranch(config)
    head = CKDTrainingModel(config).box_head_v
    sd = {f"backbone.{k}": torch.randn_like(v) for k, v in vit.state_dict().items()}
    sd["backbone.pos_embed_z"] = torch.randn(1, grid_z * grid_z, config.embed_dim)
    sd["backbone.pos_embed_x"] = torch.randn(1, grid_x * grid_x, config.embed_dim)
    if temporal:
        sd["backbone.temporal_pos_embed_z"] = torch.randn(1, 1, config.embed_dim)
        sd["backbone.temporal_pos_embed_x"] = torch.randn(1, 1, config.embed_dim)
    sd.update({f"box_head.{k}": v + 0.1 for k, v in head.state_dict().items()})
    names = ["lib", "lib.train", "lib.train.admin", "lib.train.admin.settings"]
    mods = {n: types.ModuleType(n) for n in names}

    class Settings:
        pass

    Settings.__module__, Settings.__qualname__ = names[-1], "Settings"
    mods[names[-1]].Settings = Settings
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules.update(mods)
    try:
        torch.save({"net": sd, "settings": Settings(), "epoch": 300}, path)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    # weights_only loading refuses the pickled class: the restricted unpickler is needed
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    return sd


def test_init_from_a_droptrack_style_checkpoint(tmp_path):
    path = tmp_path / "DropTrack_k700_800E_alldata.pth.tar"
    sd = _fake_ostrack_checkpoint(path, NOCE, grid_z=6, grid_x=12)
    full = read_checkpoint(path)[0]
    assert set(full) == set(sd)
    model = CKDTrainingModel(NOCE)
    init_from_single_modal(model, full)
    pz = resize_grid_embed(sd["backbone.pos_embed_z"], 4) + sd["backbone.temporal_pos_embed_z"]
    px = resize_grid_embed(sd["backbone.pos_embed_x"], 8) + sd["backbone.temporal_pos_embed_x"]
    ref = torch.nn.functional.interpolate(sd["backbone.pos_embed_z"].reshape(1, 6, 6, 16).permute(0, 3, 1, 2),
                                          size=(4, 4), mode="bilinear", align_corners=False)
    assert torch.allclose(pz - sd["backbone.temporal_pos_embed_z"], ref.permute(0, 2, 3, 1).reshape(1, 16, 16))
    for name in ("rgb_branch", "tir_branch", "teacher_rgb", "teacher_tir"):
        branch = getattr(model, name)
        assert torch.equal(branch.pos_embed_z, pz) and torch.equal(branch.pos_embed_x, px)
        assert torch.equal(branch.blocks[1].attn.qkv.weight, sd["backbone.blocks.1.attn.qkv.weight"])
    w = sd["box_head.conv1_ctr.0.weight"]
    assert torch.equal(model.box_head.conv1_ctr[0].weight, torch.cat([w, w], dim=1))
    assert torch.equal(model.box_head_v.conv1_ctr[0].weight, w) and torch.equal(model.box_head_i.conv1_ctr[0].weight, w)
    assert torch.equal(model.box_head.conv2_size[0].weight, sd["box_head.conv2_size.0.weight"])


def test_init_rejects_a_checkpoint_of_another_width(tmp_path):
    path = tmp_path / "ostrack.pth.tar"
    _fake_ostrack_checkpoint(path, NOCE.replace(embed_dim=32, num_heads=4), 4, 8, temporal=False)
    with pytest.raises(CKDError, match="wrong shapes"):
        init_from_single_modal(CKDTrainingModel(NOCE), read_checkpoint(path)[0])


def test_students_from_teachers():
    model = _model()
    model.rgb_branch.blocks[0].mlp.fc1.weight.data.zero_()
    init_students_from_teachers(model)
    assert torch.equal(model.rgb_branch.blocks[0].mlp.fc1.weight, model.teacher_rgb.blocks[0].mlp.fc1.weight)
    w = model.box_head.conv1_offset[0].weight
    assert torch.equal(w[:, :16], model.box_head_v.conv1_offset[0].weight)
    assert torch.equal(w[:, 16:], model.box_head_i.conv1_offset[0].weight)
