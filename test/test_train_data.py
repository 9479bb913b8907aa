"""Training data: dataset layouts, causal pair sampling, joint RGB/TIR augmentation, exact crops."""
import numpy as np
import pytest
import torch

from ckd_ros.errors import CKDError
from ckd_ros.tracking.preprocess import sample_target
from ckd_ros.train.augment import AugmentSpec, CropSpec, box_in_crop, fully_padded, process_pair
from ckd_ros.train.dataset import PairDataset
from ckd_ros.train.sampler import PairSampler, sample_pair
from ckd_ros.train.sources import array_sequences, build_sources, folder_sequences, synthetic_sequences
from conftest import shared_path

SPECS = {"template": CropSpec(2.0, 64), "search": CropSpec(4.0, 128, 3.0, 0.25)}
NO_AUG = AugmentSpec(0.0, 0.0, 0.0, 0.0)


def _rect_sequence(n=30, size=(96, 128), seed=0):
    """A bright rectangle moving on a dark textured frame; thermal = inverted RGB (gray)."""
    rng = np.random.default_rng(seed)
    h, w = size
    rgb, tir, boxes = [], [], []
    for t in range(n):
        img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        x, y = 20 + t, 30 + (t % 7)
        img[y:y + 16, x:x + 24] = (250, 200, 40)
        rgb.append(img)
        tir.append(255 - img[:, :, 0])
        boxes.append([x, y, 24, 16])
    return rgb, tir, np.array(boxes, np.float32)


def test_causal_pairs_respect_order_and_interval():
    rng = np.random.default_rng(0)
    visible = np.ones(50, bool)
    gaps = set()
    for _ in range(300):
        t, s = sample_pair(visible, 5, rng)
        assert 0 <= t < s < t + 5  # OSTrack's range end is exclusive
        gaps.add(s - t)
    assert gaps == {1, 2, 3, 4}
    visible[10:20] = False  # a base just before the hole finds nothing in reach: the gap widens by 5
    for _ in range(300):
        t, s = sample_pair(visible, 5, rng)
        assert visible[t] and visible[s] and t < s


def test_sampler_skips_short_or_empty_sequences():
    short = array_sequences([_rect_sequence(10)])
    with pytest.raises(CKDError, match="no usable training sequence"):
        PairSampler([(short, 1.0)])
    good = array_sequences([_rect_sequence(30)])
    seq, t, s = PairSampler([(short, 1.0), (good, 1.0)], max_interval=4).sample(np.random.default_rng(1))
    assert seq is good[0] and 0 <= t < s < t + 4


def test_identical_modalities_stay_identical_through_augmentation():
    """Every random decision is shared by RGB and TIR: equal inputs give equal outputs."""
    rgb, _, boxes = _rect_sequence()
    aug = AugmentSpec(grayscale=0.5, flip=0.5, brightness=0.2, crop_flip=0.5)
    flips = set()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        out = process_pair((rgb[3], rgb[3]), boxes[3], (rgb[9], rgb[9]), boxes[9], SPECS, aug, 16, rng)
        assert out is not None
        for split in ("template", "search"):
            assert np.array_equal(out[f"{split}_rgb"], out[f"{split}_tir"])
        flips.add(bool(out["search_anno"][0] + out["search_anno"][2] / 2 > 0.5))
    assert flips == {True, False}  # flips did happen (the target sits left of centre before flipping)


def test_crops_are_the_trackers_sample_target_and_boxes_map_into_them():
    rgb, tir, boxes = _rect_sequence()
    specs = {"template": CropSpec(2.0, 64), "search": CropSpec(4.0, 128)}  # no jitter
    out = process_pair((rgb[0], tir[0]), boxes[0], (rgb[5], tir[5]), boxes[5], specs, NO_AUG, 16,
                       np.random.default_rng(0))
    crop, rf = sample_target(rgb[5], boxes[5].tolist(), 4.0, 128)
    expected = (crop.astype(np.float32) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    assert np.allclose(out["search_rgb"], expected.transpose(2, 0, 1), atol=1e-5)
    tir_crop, _ = sample_target(tir[5], boxes[5].tolist(), 4.0, 128)
    assert np.allclose(out["search_tir"][0] * 0.229 + 0.485, tir_crop / 255.0, atol=1e-5)  # gray -> 3 channels
    x, y, w, h = out["search_anno"] * 128
    assert w == pytest.approx(24 * rf) and h == pytest.approx(16 * rf)
    # the bright target pixels lie inside the annotated box
    bright = np.argwhere(crop[:, :, 0] > 200)
    assert bright[:, 1].min() >= x - 2 and bright[:, 1].max() <= x + w + 2
    assert bright[:, 0].min() >= y - 2 and bright[:, 0].max() <= y + h + 2
    assert np.allclose(box_in_crop(boxes[5], boxes[5], rf, 128)[2:], [24 * rf / 128, 16 * rf / 128])


def test_fully_padded_crops_are_detected():
    box = np.array([-500.0, -500.0, 20.0, 20.0])
    assert fully_padded((96, 128), box, CropSpec(4.0, 128), 16)
    assert not fully_padded((96, 128), np.array([40.0, 30.0, 20.0, 20.0]), CropSpec(4.0, 128), 16)


def test_dataset_items_depend_only_on_seed_rank_epoch_index():
    sources = [(array_sequences([_rect_sequence()]), 1.0)]
    aug = AugmentSpec()

    def make(rank):
        return PairDataset(sources, 4, SPECS, aug, 16, seed=5, rank=rank, max_interval=10)

    a, b = make(0), make(0)
    assert all(torch.equal(a[2][k], b[2][k]) for k in a[2])
    assert not torch.equal(a[2]["search_rgb"], make(1)[2]["search_rgb"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["search_rgb"], b[2]["search_rgb"])
    item = a[0]
    assert item["template_rgb"].shape == (3, 64, 64) and item["search_tir"].shape == (3, 128, 128)
    assert item["search_rgb"].dtype == torch.float32 and item["search_anno"].shape == (4,)


def test_synthetic_source_and_lasher_folder_layout(tmp_path):
    from ckd_ros.synthetic import make_sequence, write_sequence
    seqs = synthetic_sequences(num_sequences=1, num_frames=6, size=(96, 80), seed=3)
    rgb, tir = seqs[0].frames(2)
    assert rgb.shape == (80, 96, 3) and tir.shape == (80, 96) and tir.dtype == np.uint8
    write_sequence(make_sequence(3, num_frames=6, size=(96, 80)), tmp_path / "seqA", thermal="gray8")
    loaded = folder_sequences("lasher", tmp_path)
    assert [s.name for s in loaded] == ["seqA"]
    assert np.allclose(loaded[0].boxes, seqs[0].boxes, atol=1e-3)
    rgb_f, tir_f = loaded[0].frames(2)
    assert rgb_f.shape == (80, 96, 3) and tir_f.shape == (80, 96, 3)
    assert np.abs(rgb_f.astype(int) - rgb.astype(int)).mean() < 8  # JPEG round trip of the same frame


def test_vtuav_layout_uses_every_tenth_frame():
    root = shared_path("data", "vtuav_bus1")
    (seq,) = folder_sequences("vtuav", root)
    assert len(seq) == 11 and seq.visible.all()
    assert seq.frames.rgb[3].name == "000030.jpg" and seq.frames.tir[3].parent.name == "ir_gray"
    assert seq.boxes[0].tolist() == [292.5, 47.0, 33.0, 41.5]


def test_bad_dataset_entries_are_reported(tmp_path):
    with pytest.raises(CKDError, match="unknown keys"):
        build_sources([{"type": "synthetic", "frames": 3}])
    with pytest.raises(CKDError, match="not a folder"):
        build_sources([{"type": "lasher", "root": str(tmp_path / "missing")}])
    with pytest.raises(CKDError, match="no gtot sequences"):
        build_sources([{"type": "gtot", "root": str(tmp_path)}])
