"""CKD training losses: style/content distillation properties, tracking loss pieces (ckd-spec §4.4)."""
import math

import pytest
import torch

from ckd_ros.train.losses import (
    content_distillation,
    content_loss,
    focal_loss,
    gaussian_label_map,
    gaussian_radius,
    generalized_box_iou,
    instance_norm,
    style_distillation,
    style_loss,
    tracking_loss,
)

W = {"giou": 2.0, "l1": 5.0, "focal": 1.0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _feat(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_style_loss_zero_for_equal_channel_statistics():
    f1 = _feat(2, 20, 8)
    # a token permutation keeps every channel's mean and std but changes the feature
    f2 = f1[:, torch.randperm(20, generator=torch.Generator().manual_seed(1))]
    assert not torch.equal(f1, f2)
    assert style_loss(f1, f2).item() == pytest.approx(0.0, abs=1e-10)


def test_style_loss_positive_and_exact_for_different_statistics():
    f1 = _feat(2, 20, 8)
    f2 = 3.0 * f1 + 0.5
    mu1, mu2 = f1.mean(1), f2.mean(1)
    sd1, sd2 = f1.std(1, unbiased=True), f2.std(1, unbiased=True)
    expected = ((mu1 - mu2) ** 2 + (sd1 - sd2) ** 2).mean()
    assert style_loss(f1, f2).item() > 0
    assert torch.allclose(style_loss(f1, f2), expected)
    # unbiased std: the biased one gives another value
    biased = ((mu1 - mu2) ** 2 + (f1.std(1, unbiased=False) - f2.std(1, unbiased=False)) ** 2).mean()
    assert not torch.allclose(style_loss(f1, f2), biased)


def test_content_loss_invariant_to_per_channel_affine_student_changes():
    t = _feat(2, 30, 8, seed=2)
    s = t + 0.5 * _feat(2, 30, 8, seed=3)  # a student that partly agrees with its teacher
    scale = torch.rand(1, 1, 8, generator=torch.Generator().manual_seed(4)) * 5 + 0.5  # positive per channel
    shift = torch.randn(1, 1, 8, generator=torch.Generator().manual_seed(5)) * 10
    base = content_loss(t, s)
    assert base.item() > 0.05
    assert content_loss(t, s * scale + shift).item() == pytest.approx(base.item(), rel=1e-4)
    # ... but not to a per-token rescaling, which changes the content
    per_token = torch.linspace(0.2, 3.0, 30).view(1, 30, 1)
    assert content_loss(t, s * per_token).item() > 1.5 * base.item()


def test_instance_norm_matches_torch_instancenorm1d():
    f = _feat(2, 30, 8)
    ref = torch.nn.InstanceNorm1d(8)(f.transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(instance_norm(f), ref, atol=1e-6)


def test_no_gradient_reaches_the_teacher_through_content_loss():
    teacher = [_feat(2, 10, 4, seed=i).requires_grad_() for i in range(3)]
    student = [_feat(2, 10, 4, seed=10 + i).requires_grad_() for i in range(3)]
    loss = content_distillation([teacher], [student])
    loss.backward()
    assert all(t.grad is None for t in teacher)
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
    # summed over blocks (not averaged)
    assert torch.allclose(loss, sum(content_loss(t, s) for t, s in zip(teacher, student)))


def test_both_students_receive_style_gradients_summed_over_blocks():
    rgb = [_feat(2, 10, 4, seed=i).requires_grad_() for i in range(3)]
    tir = [(2 * _feat(2, 10, 4, seed=20 + i)).requires_grad_() for i in range(3)]
    loss = style_distillation(rgb, tir)
    loss.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in rgb + tir)
    assert torch.allclose(loss, sum(style_loss(a, b) for a, b in zip(rgb, tir)))


def test_token_variants_use_the_channel_axis():
    f1 = _feat(2, 10, 6)
    f2 = f1[:, :, torch.randperm(6, generator=torch.Generator().manual_seed(0))]  # channel permutation
    assert style_loss(f1, f2, "token").item() == pytest.approx(0.0, abs=1e-10)
    assert style_loss(f1, f2, "channel").item() > 0
    with pytest.raises(ValueError):
        style_loss(f1, f2, "pixel")


def test_gaussian_label_map_as_ostrack():
    # box of 4x4 cells centred on cell (8, 8) of a 16x16 grid: CornerNet radius (bug version) = 1
    box = torch.tensor([[6 / 16, 6 / 16, 4 / 16, 4 / 16]])
    r = gaussian_radius(torch.tensor([4.0]), torch.tensor([4.0])).item()
    assert int(r) == 1
    m = gaussian_label_map(box, 16)
    assert m.shape == (1, 1, 16, 16)
    assert m[0, 0, 8, 8] == 1 and int((m == 1).sum()) == 1
    sigma = 3 / 6  # (2r + 1) / 6
    assert m[0, 0, 8, 9].item() == pytest.approx(math.exp(-1 / (2 * sigma ** 2)), rel=1e-6)
    assert m[0, 0, 8, 10] == 0  # outside the radius


def test_focal_loss_prefers_the_label_map():
    target = gaussian_label_map(torch.tensor([[0.4, 0.4, 0.2, 0.2]]), 16)
    good = target.clamp(1e-4, 1 - 1e-4)
    flat = torch.full_like(target, 0.5)
    assert focal_loss(good, target) < focal_loss(flat, target)


def test_giou_and_tracking_loss_of_a_perfect_prediction():
    b = torch.tensor([[0.1, 0.2, 0.5, 0.6]])
    giou, iou = generalized_box_iou(b, b)
    assert giou.item() == pytest.approx(1.0) and iou.item() == pytest.approx(1.0)
    # head output whose argmax cell, offset and size decode to the GT box exactly
    gt = torch.tensor([[0.25, 0.25, 0.25, 0.25]])  # cx = cy = 0.375 -> cell 6 of 16 + offset 0.0
    score = torch.full((1, 1, 16, 16), 1e-4)
    score[0, 0, 6, 6] = 1 - 1e-4
    size = torch.full((1, 2, 16, 16), 0.25)
    offset = torch.zeros(1, 2, 16, 16)
    out = tracking_loss({"score_map": score, "size_map": size, "offset_map": offset}, gt,
                        gaussian_label_map(gt, 16), W)
    assert out["giou"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["l1"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["iou"].item() == pytest.approx(1.0)
