"""Tracker state machine (IDLE / TRACKING / LOST), no drift while LOST, input validation."""
from __future__ import annotations

import types

import numpy as np
import pytest

from ckd_ros.runtime.base import Backend
from ckd_ros.tracking import Registration, Tracker, TrackerParams, TrackResult, TrackState


class ScriptedBackend(Backend):
    """Peak of a given score at a given cell each frame (box size 0.1 x 0.1 of the crop, no offset)."""

    name = "scripted"

    def __init__(self, script, config=None):
        super().__init__()
        self.script = list(script)  # [(score, (iy, ix)), ...]
        self.config = config
        self.searches = []

    def infer(self, z_rgb, z_tir, x_rgb, x_tir):
        score, (iy, ix) = self.script.pop(0)
        self.searches.append(x_rgb.copy())
        feat = x_rgb.shape[-1] // 16
        score_map = np.full((1, 1, feat, feat), 1e-4, np.float32)
        score_map[0, 0, iy, ix] = score
        size_map = np.full((1, 2, feat, feat), 0.1, np.float32)
        return {"score_map": score_map, "size_map": size_map,
                "offset_map": np.zeros((1, 2, feat, feat), np.float32)}


def frames(h=240, w=320):
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (h, w, 3), np.uint8), rng.integers(0, 256, (h, w), np.uint8)


BOX = [140.0, 100.0, 40.0, 40.0]  # crop 160 px, search factor 4 -> 256 px: 1 cell = 10 px
CENTRE, RIGHT = (8, 8), (8, 11)  # cell (8, 8) = no motion; (8, 11) = 30 px to the right


def centre_x(box):
    return box[0] + box[2] / 2


def test_lost_transitions_and_no_drift():
    rgb, tir = frames()
    low, high = 0.2, 0.8
    script = [(low, RIGHT)] * 2 + [(low, RIGHT)] * 3 + [(high, CENTRE)]
    backend = ScriptedBackend(script)
    tracker = Tracker(backend, TrackerParams(lost_threshold=0.5, lost_frames=3))
    assert tracker.state is TrackState.IDLE and tracker.box is None
    tracker.initialize(rgb, tir, BOX)
    assert tracker.state is TrackState.TRACKING
    confident_cx = centre_x(BOX)

    # two unconfident frames: still TRACKING and still following (a short dip, official behaviour)
    r1 = tracker.track(rgb, tir)
    r2 = tracker.track(rgb, tir)
    assert (r1.state, r2.state) == (TrackState.TRACKING, TrackState.TRACKING)
    assert centre_x(r2.box_xywh) > centre_x(r1.box_xywh) > confident_cx

    # third low frame: LOST; the search centre falls back to the last confident box and stays there
    r3 = tracker.track(rgb, tir)
    assert r3.state is TrackState.LOST and r3.score == pytest.approx(low)
    np.testing.assert_allclose(tracker.box, BOX)
    r4 = tracker.track(rgb, tir)
    r5 = tracker.track(rgb, tir)
    assert r4.state is r5.state is TrackState.LOST
    np.testing.assert_allclose(tracker.box, BOX)
    # while LOST the search crop does not move (same image -> identical network input)
    assert np.array_equal(backend.searches[3], backend.searches[4])
    assert not np.array_equal(backend.searches[1], backend.searches[3])  # it had drifted before

    # recovery: one confident frame -> TRACKING, the box follows again
    r6 = tracker.track(rgb, tir)
    assert r6.state is TrackState.TRACKING and r6.score == pytest.approx(high)
    np.testing.assert_allclose(tracker.box, r6.box_xywh)


def test_without_threshold_it_never_gets_lost_and_follows():
    rgb, tir = frames()
    tracker = Tracker(ScriptedBackend([(0.01, RIGHT)] * 6), TrackerParams())
    tracker.initialize(rgb, tir, BOX)
    xs = []
    for _ in range(6):
        r = tracker.track(rgb, tir)
        assert r.state is TrackState.TRACKING
        xs.append(centre_x(r.box_xywh))
    assert all(b > a for a, b in zip(xs, xs[1:]))  # drifts right every frame, like the official loop


def test_lost_frames_one_and_confident_box_updates():
    rgb, tir = frames()
    script = [(0.9, RIGHT), (0.1, CENTRE), (0.1, CENTRE)]
    params = TrackerParams(lost_threshold=np.float32(0.5), lost_frames=np.int64(1))  # numpy scalars from YAML
    tracker = Tracker(ScriptedBackend(script), params)
    tracker.initialize(rgb, tir, BOX)
    good = tracker.track(rgb, tir)
    assert good.state is TrackState.TRACKING
    assert tracker.track(rgb, tir).state is TrackState.LOST
    np.testing.assert_allclose(tracker.box, good.box_xywh)  # the newest confident box, not the init box


def test_reset_and_track_before_initialize():
    rgb, tir = frames()
    tracker = Tracker(ScriptedBackend([(0.9, CENTRE)]))
    with pytest.raises(RuntimeError, match="initialize"):
        tracker.track(rgb, tir)
    result = tracker.initialize(rgb, tir, BOX)
    assert isinstance(result, TrackResult) and result.state is TrackState.TRACKING
    tracker.reset()
    assert tracker.state is TrackState.IDLE and tracker.box is None
    with pytest.raises(RuntimeError):
        tracker.track(rgb, tir)


def test_sizes_from_backend_config_and_timing():
    rgb, tir = frames()
    cfg = types.SimpleNamespace(template_size=64, search_size=128, patch_size=16)
    backend = ScriptedBackend([(0.9, (4, 4))], config=cfg)
    tracker = Tracker(backend)
    assert (tracker.template_size, tracker.search_size) == (64, 128)
    tracker.initialize(rgb, tir, BOX)
    assert backend._z_rgb.shape == (1, 3, 64, 64)
    r = tracker.track(rgb, tir)
    assert backend.searches[0].shape == (1, 3, 128, 128)
    np.testing.assert_allclose(centre_x(r.box_xywh), centre_x(BOX), atol=1e-3)  # centre cell of 8x8
    assert set(r.timing_ms) == {"preprocess", "inference", "postprocess"}


@pytest.mark.parametrize("box, match", [
    ([10, 10, 0, 5], "zero or negative size"),
    ([10, 10, 5, -1], "zero or negative size"),
    ([400, 10, 20, 20], "outside the 320x240 image"),
    ([-50, 10, 20, 20], "outside"),
    ([1, 2, 3], "4 numbers"),
    ([1, 2, float("nan"), 4], "NaN"),
])
def test_initialize_rejects_bad_boxes(box, match):
    rgb, tir = frames()
    tracker = Tracker(ScriptedBackend([]))
    with pytest.raises(ValueError, match=match):
        tracker.initialize(rgb, tir, box)
    assert tracker.state is TrackState.IDLE


def test_initialize_rejects_bad_images():
    rgb, tir = frames()
    tracker = Tracker(ScriptedBackend([]))
    with pytest.raises(ValueError, match="same size"):
        tracker.initialize(rgb, tir[:200], BOX)
    with pytest.raises(ValueError, match="uint8"):
        tracker.initialize(rgb, tir.astype(np.uint16), BOX)
    with pytest.raises(ValueError, match="HxWx3"):
        tracker.initialize(rgb[:, :, :2], tir, BOX)


def test_registration_makes_sizes_match():
    rgb, _ = frames(240, 320)
    tir_small = np.random.default_rng(4).integers(0, 256, (120, 160), np.uint8)
    reg = Registration([2, 0, 0, 0, 2, 0, 0, 0, 1])  # thermal at half resolution
    tracker = Tracker(ScriptedBackend([(0.9, CENTRE)]), registration=reg)
    tracker.initialize(rgb, tir_small, BOX)
    assert tracker.track(rgb, tir_small).state is TrackState.TRACKING
    assert tracker.last_search_crops[1].shape == (256, 256)


@pytest.mark.parametrize("kwargs, match", [
    ({"search_factor": 0}, "search_factor"),
    ({"template_size": -1}, "template_size"),
    ({"lost_threshold": 1.5}, "lost_threshold"),
    ({"lost_frames": 0}, "lost_frames"),
])
def test_params_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Tracker(ScriptedBackend([]), TrackerParams(**kwargs))
