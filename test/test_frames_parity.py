"""One way in: the same 8-bit and 16-bit RGB-T sequence gives byte-identical network inputs through
`ckd track`'s source, the benchmark's dataset reader, the training data path (augmentation off) and
the node's conversion (duck-typed Image messages built from the same arrays).

A recording backend captures the four tensors the tracker feeds the network; the training path's
uint8 crops (the same `sample_target` crops around the same boxes) must normalise to the same bytes,
and `process_pair` with augmentation off must be built from exactly those crops.
"""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from ckd_ros.eval.runner import run_benchmark
from ckd_ros.frames.datasets import LasHeR
from ckd_ros.frames.ros_image import array_to_image_msg, decode_rgb, decode_thermal
from ckd_ros.frames.thermal import ThermalNormalizer
from ckd_ros.runtime.base import Backend
from ckd_ros.tracking import Tracker, TrackerParams
from ckd_ros.tracking.preprocess import normalize, sample_target

N, W, H = 12, 160, 128
BOXES = [(40 + 5 * i, 50 + 2 * i, 24, 20) for i in range(N)]


class RecordingBackend(Backend):
    """Records every template and search tensor; the maps move the box a little, deterministically."""

    name = "recording-fake"
    config = SimpleNamespace(template_size=128, search_size=256)

    def __init__(self):
        super().__init__()
        self.templates, self.searches = [], []

    def set_template(self, z_rgb, z_tir):
        super().set_template(z_rgb, z_tir)
        self.templates.append((z_rgb.tobytes(), z_tir.tobytes()))

    def infer(self, z_rgb, z_tir, x_rgb, x_tir):
        self.searches.append((x_rgb.tobytes(), x_tir.tobytes()))
        k = len(self.searches)
        score = np.zeros((1, 1, 16, 16), np.float32)
        score[0, 0, 8 + k % 2, 8] = 0.9
        return {"score_map": score, "size_map": np.full((1, 2, 16, 16), 0.1, np.float32),
                "offset_map": np.full((1, 2, 16, 16), 0.3, np.float32)}


def make_sequence(bits: int):
    """RGB uint8 frames and thermal frames (uint8 or uint16 counts) with a moving warm target."""
    rng = np.random.default_rng(bits)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 2)
    if bits == 8:
        tbg = cv2.GaussianBlur(rng.integers(40, 120, (H, W), dtype=np.uint8), (0, 0), 3)
    else:
        tbg = (27500 + cv2.GaussianBlur(rng.normal(0, 300, (H, W)).astype(np.float32), (0, 0), 3)).astype(np.uint16)
    rgbs, tirs = [], []
    for x, y, w, h in BOXES:
        rgb, tir = bg.copy(), tbg.copy()
        rgb[y:y + h, x:x + w] = (200, 40, 40)
        tir[y:y + h, x:x + w] = 230 if bits == 8 else 29800
        rgbs.append(rgb)
        tirs.append(tir)
    return rgbs, tirs


def write_lasher(root, rgbs, tirs):
    """LasHeR layout with unpadded names (1.png ... 12.png): natural order must be used everywhere."""
    seq = root / "seq"
    (seq / "visible").mkdir(parents=True)
    (seq / "infrared").mkdir()
    for i, (rgb, tir) in enumerate(zip(rgbs, tirs)):
        cv2.imwrite(str(seq / "visible" / f"{i + 1}.png"), rgb[:, :, ::-1])
        cv2.imwrite(str(seq / "infrared" / f"{i + 1}.png"), tir)  # 16-bit PNG stays 16-bit
    (seq / "init.txt").write_text("\n".join(",".join(map(str, b)) for b in BOXES) + "\n")
    return seq


def run_tracker(frames):
    """The tracker over (rgb, tir8) pairs; returns (recording backend, boxes)."""
    backend = RecordingBackend()
    tracker = Tracker(backend, TrackerParams())
    boxes = []
    for i, (rgb, tir) in enumerate(frames):
        result = tracker.initialize(rgb, tir, BOXES[0]) if i == 0 else tracker.track(rgb, tir)
        boxes.append(np.asarray(result.box_xywh, np.float64))
    return backend, boxes


def via_ckd_track(seq, monkeypatch, tmp_path):
    """`ckd track --sequence` (its FrameSource + thermal options), with the backend swapped for the recorder."""
    from ckd_ros.tracking import cli as track_cli

    backend = RecordingBackend()
    monkeypatch.setattr(track_cli, "_open_backend", lambda args: backend)
    parser = argparse.ArgumentParser()
    track_cli.register(parser.add_subparsers())
    args = parser.parse_args(["track", "--sequence", str(seq), "--out", str(tmp_path / "track.txt"), "--quiet",
                              "--onnx", "unused.onnx"])
    assert args.func(args) == 0
    return backend, np.loadtxt(tmp_path / "track.txt")


def via_benchmark(root, tmp_path):
    """The benchmark runner (`ckd benchmark`) over the LasHeR reader, with the recorder as the tracker's backend."""
    backend = RecordingBackend()
    spec = SimpleNamespace(build=lambda: Tracker(backend, TrackerParams()))
    run_benchmark(LasHeR(root), tmp_path / "bench", spec, progress=False)
    return backend


def via_node_conversion(rgbs, tirs):
    """The node's per-pair conversion: ros_image decode + the thermal conversion of its default parameters."""
    from ckd_ros.node import params as node_params

    normalizer = node_params.make_normalizer(node_params.defaults())
    pairs = []
    for rgb, tir in zip(rgbs, tirs):
        rgb_msg = array_to_image_msg(rgb, "rgb8", image_cls=lambda: SimpleNamespace(header=None))
        enc = "mono8" if tir.dtype == np.uint8 else "mono16"
        tir_msg = array_to_image_msg(tir, enc, image_cls=lambda: SimpleNamespace(header=None))
        raw, _ = decode_thermal(tir_msg)
        pairs.append((decode_rgb(rgb_msg), normalizer(raw)))
    return pairs


@pytest.mark.parametrize("bits", [8, 16])
def test_same_network_inputs_through_every_path(bits, tmp_path, monkeypatch):
    rgbs, tirs = make_sequence(bits)
    root = tmp_path / "lasher"
    seq = write_lasher(root, rgbs, tirs)

    track_backend, track_boxes = via_ckd_track(seq, monkeypatch, tmp_path)
    bench_backend = via_benchmark(root, tmp_path)
    node_backend, node_boxes = run_tracker(via_node_conversion(rgbs, tirs))

    assert len(track_backend.templates) == 1 and len(track_backend.searches) == N - 1
    for other in (bench_backend, node_backend):
        assert other.templates == track_backend.templates
        assert other.searches == track_backend.searches  # byte-identical, frame by frame
    node_boxes = np.asarray(node_boxes)
    assert np.abs(track_boxes - node_boxes).max() <= 5e-5  # the result file holds 4 decimals
    bench_rows = np.loadtxt(tmp_path / "bench" / "seq.txt")
    np.testing.assert_array_equal(bench_rows, node_boxes.astype(int))

    # the training data path: folder reader + the same thermal conversion, augmentation off
    from ckd_ros.train.augment import AugmentSpec, CropSpec, _to_input, process_pair
    from ckd_ros.train.sources import folder_sequences

    (train_seq,) = folder_sequences("lasher", root)
    specs = {"template": CropSpec(2.0, 128), "search": CropSpec(4.0, 256)}
    no_aug = AugmentSpec(grayscale=0.0, flip=0.0, brightness=0.0, crop_flip=0.0)
    template = train_seq.frames(0)
    z = [sample_target(img, BOXES[0], 2.0, 128)[0] for img in template]
    assert (normalize(z[0]).tobytes(), normalize(z[1]).tobytes()) == track_backend.templates[0]
    for i in range(1, N):
        search = train_seq.frames(i)
        prev = node_boxes[i - 1]  # the tracker searches around the previous frame's box
        x = [sample_target(img, prev.tolist(), 4.0, 256)[0] for img in search]
        assert (normalize(x[0]).tobytes(), normalize(x[1]).tobytes()) == track_backend.searches[i - 1]
        sample = process_pair(template, np.asarray(BOXES[0], float), search, prev, specs, no_aug, 16,
                              np.random.default_rng(i))
        for key, crop in (("template_rgb", z[0]), ("template_tir", z[1]), ("search_rgb", x[0]),
                          ("search_tir", x[1])):
            np.testing.assert_array_equal(sample[key], _to_input(crop, 1.0, False))


def test_16bit_thermal_is_not_flattened_and_uses_the_shared_default():
    """The 16-bit sequence reaches the network with its contrast (not the >>8 flattening of IMREAD_COLOR)."""
    _, tirs = make_sequence(16)
    out = ThermalNormalizer()(tirs[0])
    x, y, w, h = BOXES[0]
    background = np.ones(out.shape[:2], bool)
    background[y:y + h, x:x + w] = False
    assert out[~background].min() == 255  # the warm target (2.3 % of the pixels) sets p99: white
    assert len(np.unique(out[background])) >= 15  # the background keeps its texture
    assert out[background].max() < 30
    flattened = (tirs[0] >> 8).astype(np.uint8)  # what cv2.IMREAD_COLOR makes of 16-bit counts
    assert len(np.unique(flattened[background])) <= 3
