"""The tracker loop against the official CKD tracker (fixture tracker_seq.npz, ckd_parity README §4)."""
from __future__ import annotations

import numpy as np
import pytest

from ckd_ros.runtime.base import Backend
from ckd_ros.tracking import Tracker, TrackerParams, TrackState
from ckd_ros.tracking.postprocess import hann2d
from ckd_ros.tracking.preprocess import normalize, sample_target
from conftest import shared_path


@pytest.fixture(scope="module")
def seq(tracker_seq):
    return tracker_seq


class ReplayBackend(Backend):
    """Returns the official run's maps frame by frame; records whether its inputs were the official crops."""

    name = "replay"

    def __init__(self, seq):
        super().__init__()
        self.seq = seq
        self.frame = 0
        self.template_ok = None
        self.search_ok = []

    def set_template(self, z_rgb, z_tir):
        super().set_template(z_rgb, z_tir)
        self.template_ok = (np.array_equal(z_rgb, normalize(self.seq["template_crop_rgb"]))
                            and np.array_equal(z_tir, normalize(self.seq["template_crop_tir"])))

    def infer(self, z_rgb, z_tir, x_rgb, x_tir):
        i = self.frame
        self.frame += 1
        assert x_rgb.shape == (1, 3, 256, 256) and x_rgb.dtype == np.float32
        self.search_ok.append(np.array_equal(x_rgb, normalize(self.seq["search_crops_rgb"][i]))
                              and np.array_equal(x_tir, normalize(self.seq["search_crops_tir"][i])))
        return {"score_map": self.seq["score_maps"][i:i + 1], "size_map": self.seq["size_maps"][i:i + 1],
                "offset_map": self.seq["offset_maps"][i:i + 1]}


def run_sequence(seq, backend, tir_gray=False):
    tracker = Tracker(backend)
    tir = seq["frames_tir"][..., 0] if tir_gray else seq["frames_tir"]
    results = [tracker.initialize(seq["frames_rgb"][0], tir[0], seq["init_box"])]
    for i in range(1, len(seq["frames_rgb"])):
        results.append(tracker.track(seq["frames_rgb"][i], tir[i]))
    return results


def test_template_and_search_crops_exact(seq):
    crop, factor = sample_target(seq["frames_rgb"][0], seq["init_box"], 2.0, 128)
    assert np.array_equal(crop, seq["template_crop_rgb"])
    assert factor == seq["template_resize_factor"]
    crop, _ = sample_target(seq["frames_tir"][0], seq["init_box"], 2.0, 128)
    assert np.array_equal(crop, seq["template_crop_tir"])
    for i, box in enumerate(seq["search_crop_boxes"]):
        crop, factor = sample_target(seq["frames_rgb"][i + 1], box, 4.0, 256)
        assert np.array_equal(crop, seq["search_crops_rgb"][i]), f"RGB search crop of frame {i + 1}"
        assert factor == seq["search_resize_factors"][i]
        crop, _ = sample_target(seq["frames_tir"][i + 1], box, 4.0, 256)
        assert np.array_equal(crop, seq["search_crops_tir"][i]), f"TIR search crop of frame {i + 1}"


def test_hann_window_bit_exact(seq):
    assert hann2d(16).dtype == np.float32
    assert np.array_equal(hann2d(16), seq["hann_window"])


@pytest.mark.parametrize("tir_gray", [False, True], ids=["tir_3ch", "tir_gray"])
def test_boxes_match_official_tracker(seq, tir_gray):
    backend = ReplayBackend(seq)
    results = run_sequence(seq, backend, tir_gray)
    assert backend.template_ok
    assert backend.search_ok == [True] * 7
    boxes = np.array([r.box_xywh for r in results])
    np.testing.assert_allclose(boxes, seq["pred_boxes"], rtol=0, atol=1e-2)
    assert all(r.state is TrackState.TRACKING for r in results)
    # score = raw score map value at the windowed argmax cell
    for i, r in enumerate(results[1:]):
        sel = np.argmax(seq["score_maps"][i, 0] * seq["hann_window"])
        assert r.score == pytest.approx(float(seq["score_maps"][i, 0].flat[sel]))


def test_lost_state_off_by_default_is_official(seq):
    """A threshold of 0 is 'off': same boxes as the official loop even with tiny scores."""
    backend = ReplayBackend(seq)
    tracker = Tracker(backend, TrackerParams(lost_threshold=0, lost_frames=1))
    tracker.initialize(seq["frames_rgb"][0], seq["frames_tir"][0], seq["init_box"])
    boxes = [tracker.track(seq["frames_rgb"][i], seq["frames_tir"][i]).box_xywh for i in range(1, 8)]
    np.testing.assert_allclose(boxes, seq["pred_boxes"][1:], atol=1e-2)


@pytest.mark.torch
def test_end_to_end_with_torch_model(seq):
    """mce.pth through the project's model + TorchBackend: boxes within 1e-2 px of the official run."""
    from ckd_ros.model import CKDConfig, load_checkpoint
    from ckd_ros.runtime.torch_backend import TorchBackend

    model = load_checkpoint(shared_path("fixtures", "ckd_parity", "mce.pth"), CKDConfig.preset("parity_mce"))
    backend = TorchBackend(model, device="cpu")
    results = run_sequence(seq, backend)
    boxes = np.array([r.box_xywh for r in results])
    np.testing.assert_allclose(boxes, seq["pred_boxes"], rtol=0, atol=1e-2)
