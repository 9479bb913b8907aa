"""The one offline loop: `ckd track` and `ckd benchmark` give identical boxes; SIGINT/SIGTERM keep the
finished frames/sequences marked partial; provenance beside every result set, and a benchmark refuses to
resume into results of another model or setting."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

import ckd_ros.tracking.cli as track_cli
from ckd_ros.cli import main
from ckd_ros.errors import CKDError
from ckd_ros.eval import open_dataset
from ckd_ros.eval.runner import TrackerSpec, run_benchmark, track_sequence
from ckd_ros.hashing import file_sha256
from ckd_ros.runtime.base import Backend
from ckd_ros.tracking import Tracker, TrackerParams

REPO = Path(__file__).resolve().parents[1]
DEMO_ONNX = REPO / "engines" / "demo_small.onnx"
ORT = ["--onnx", str(DEMO_ONNX), "--backend", "onnxruntime", "--device", "cpu", "--threads", "1"]


def make_dataset(root: Path, lengths=(8, 8), size=(128, 160)) -> Path:
    """RGBT234 layout: a warm box moving right; seq0 has 8-bit thermal, seq1 16-bit thermal PNGs."""
    rng = np.random.default_rng(7)
    names = [f"seq{k}" for k in range(len(lengths))]
    root.mkdir(parents=True, exist_ok=True)
    (root / "SequencesName.txt").write_text("\n".join(names) + "\n")
    for k, (name, n) in enumerate(zip(names, lengths)):
        seq = root / name
        (seq / "visible").mkdir(parents=True)
        (seq / "infrared").mkdir()
        bg = rng.integers(0, 90, (*size, 3), np.uint8)
        rows = []
        for i in range(n):
            x, y = 30 + 3 * i, 40 + k * 5
            rgb = bg.copy()
            rgb[y:y + 24, x:x + 28] = (40, 200, 230)  # BGR on disk
            tir16 = (rng.integers(7000, 7300, size) if k else rng.integers(20, 60, size)).astype(np.uint16)
            tir16[y:y + 24, x:x + 28] = 9000 if k else 220
            cv2.imwrite(str(seq / "visible" / f"{i:04d}v.png"), rgb)
            cv2.imwrite(str(seq / "infrared" / f"{i:04d}i.png"), tir16 if k else tir16.astype(np.uint8))
            rows.append(f"{x},{y},28,24")
        for f in ("init.txt", "visible.txt", "infrared.txt"):
            (seq / f).write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("loop") / "RGBT234")


def test_track_and_benchmark_give_identical_boxes(dataset, tmp_path, capsys):
    results = tmp_path / "bench"
    assert main(["benchmark", "--dataset", "rgbt234", "--root", str(dataset), "--results", str(results),
                 "--out", str(tmp_path / "ev"), "--no-eval", "--quiet"] + ORT) == 0
    spec = TrackerSpec(backend="onnxruntime", onnx=str(DEMO_ONNX), device="cpu", threads=1)
    ds = open_dataset("rgbt234", dataset)
    for name in ds.names:
        ints, floats = tmp_path / f"{name}_int.txt", tmp_path / f"{name}.txt"
        for out, extra in ((ints, ["--int"]), (floats, [])):
            assert main(["track", "--sequence", str(dataset / name), "--out", str(out), "--quiet"] + ORT + extra) == 0
        bench = np.loadtxt(results / f"{name}.txt", ndmin=2)
        np.testing.assert_array_equal(np.loadtxt(ints, ndmin=2), bench)  # the CKD result format, identical
        boxes, _ = track_sequence(spec.build(), ds.frames(name), ds.ground_truth(name).init_box, spec.thermal())
        np.testing.assert_allclose(np.loadtxt(floats, ndmin=2), boxes, atol=5e-5, rtol=0)  # 4-decimal rows
        assert np.abs(boxes[-1, :2] - boxes[0, :2]).max() > 3  # the target moved: the check can fail
    capsys.readouterr()
    prov = json.loads((results / "provenance.json").read_text())
    assert prov["status"] == "complete" and prov["model"]["onnx_sha256"] == file_sha256(DEMO_ONNX)
    assert prov["backend"] == "onnxruntime" and prov["precision"] == "fp32" and prov["sequences_finished"] == 2
    auto = TrackerSpec(onnx=str(DEMO_ONNX), device="cpu", threads=1)  # 'auto' is recorded as what it opens
    assert auto.provenance()["backend"] == auto.build().backend.name
    track_prov = json.loads((tmp_path / "seq1.provenance.json").read_text())
    assert track_prov["status"] == "complete" and track_prov["thermal"]["resolved"] == "percentile"  # 16-bit
    assert track_prov["model"]["onnx_sha256"] == prov["model"]["onnx_sha256"] and track_prov["frames_written"] == 8


class SignalBackend(Backend):
    """Still target (centre peak); sends `sig` to this process on search inference number `at` and records
    what the result file held at the first search (the run must already have replaced an older file)."""

    name = "signal"

    def __init__(self, sig=None, at=0, watch=None):
        super().__init__()
        self.sig, self.at, self.watch, self.calls, self.seen_at_first = sig, at, watch, 0, None

    def infer(self, z_rgb, z_tir, x_rgb, x_tir):
        self.calls += 1
        if self.calls == 1 and self.watch is not None:
            self.seen_at_first = Path(self.watch).read_text()
        if self.sig is not None and self.calls == self.at:
            os.kill(os.getpid(), self.sig)
        score = np.full((1, 1, 16, 16), 0.01, np.float32)
        score[0, 0, 8, 8] = 0.9
        return {"score_map": score, "size_map": np.full((1, 2, 16, 16), 0.25, np.float32),
                "offset_map": np.zeros((1, 2, 16, 16), np.float32)}


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_track_keeps_its_rows_marked_partial(dataset, tmp_path, monkeypatch, capsys, sig, code):
    out = tmp_path / "seq0.txt"
    out.write_text("1 2 3 4\n")  # an earlier run's result
    backend = SignalBackend(sig, at=5, watch=out)
    monkeypatch.setattr(track_cli, "_open_backend", lambda args: backend)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["track", "--sequence", str(dataset / "seq0"), "--out", str(out), "--quiet"]) == code
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    err = capsys.readouterr().err.strip()
    name = signal.Signals(sig).name
    assert len(err.splitlines()) == 1 and f"interrupted by {name}" in err and "PARTIAL" in err
    assert backend.seen_at_first.startswith("# PARTIAL: 1 of 8 frames")  # the old file was gone after frame 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith(f"# PARTIAL: 5 of 8 frames (interrupted by {name}")
    rows = np.loadtxt(out, ndmin=2)
    assert rows.shape == (5, 4) and rows[0].tolist() == [30, 40, 28, 24]
    prov = json.loads((tmp_path / "seq0.provenance.json").read_text())
    assert prov["status"] == "partial" and prov["frames_written"] == 5 and name in prov["note"]
    # a complete run replaces it: rows only, status complete
    monkeypatch.setattr(track_cli, "_open_backend", lambda args: SignalBackend())
    assert main(["track", "--sequence", str(dataset / "seq0"), "--out", str(out), "--quiet"]) == 0
    assert not out.read_text().startswith("#") and np.loadtxt(out, ndmin=2).shape == (8, 4)
    assert json.loads((tmp_path / "seq0.provenance.json").read_text())["status"] == "complete"


def fake_spec(monkeypatch, backend_for):
    """TrackerSpec whose build() gives a real Tracker over a fake backend (no model files opened) that
    reports the spec's backend kind as its name, as the real ones do."""

    def build(self):
        backend = backend_for(self)
        backend.name = self.backend
        return Tracker(backend, TrackerParams(**dict(self.params)))

    monkeypatch.setattr(TrackerSpec, "build", build)


def test_interrupted_benchmark_keeps_finished_sequences_and_resumes(dataset, tmp_path, monkeypatch, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model A")
    backends = []

    def backend_for(spec):
        backends.append(SignalBackend(signal.SIGINT, at=7 + 3) if not backends else SignalBackend())
        return backends[-1]

    fake_spec(monkeypatch, backend_for)
    results = tmp_path / "res"
    args = ["benchmark", "--dataset", "rgbt234", "--root", str(dataset), "--results", str(results),
            "--onnx", str(model), "--backend", "onnxruntime", "--out", str(tmp_path / "ev"), "--no-plots", "--quiet"]
    assert main(args) == 130  # SIGINT in seq1's third frame (seq0 has 7 searches)
    err = capsys.readouterr().err
    assert "interrupted by SIGINT: 1 of 2 sequences finished" in err and "resume" in err
    assert (results / "seq0.txt").is_file() and not (results / "seq1.txt").exists()
    assert not (tmp_path / "ev").exists()  # no evaluation of a partial run
    prov = json.loads((results / "provenance.json").read_text())
    assert prov["status"] == "partial" and prov["sequences_finished"] == 1
    assert main(args) == 0  # resumes: seq0 is skipped
    assert "1 of 2 sequences already finished" in capsys.readouterr().err
    assert backends[-1].calls == 7 and json.loads((results / "provenance.json").read_text())["status"] == "complete"


def test_benchmark_refuses_results_of_another_model_or_setting(dataset, tmp_path, monkeypatch):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"model A")
    b.write_bytes(b"model B")
    backends = []
    fake_spec(monkeypatch, lambda spec: backends.append(SignalBackend()) or backends[-1])
    ds = open_dataset("rgbt234", dataset)
    out = tmp_path / "res"
    run_benchmark(ds, out, TrackerSpec(backend="onnxruntime", onnx=str(a)), progress=False)
    runs = run_benchmark(ds, out, TrackerSpec(backend="onnxruntime", onnx=str(a)), progress=False)
    assert all(r.skipped for r in runs)  # same origin: resume
    for other, what in ((TrackerSpec(backend="onnxruntime", onnx=str(b)), "model.onnx_sha256"),
                        (TrackerSpec(backend="onnxruntime", onnx=str(a), params=(("lost_threshold", 0.3),)),
                         "tracker.lost_threshold"),
                        (TrackerSpec(backend="torch", onnx=str(a)), "backend")):
        with pytest.raises(CKDError, match=f"holds results of another run \\({what}.*--overwrite") as info:
            run_benchmark(ds, out, other, progress=False)
        assert "\n" not in str(info.value)
    backends.clear()
    runs = run_benchmark(ds, out, TrackerSpec(backend="onnxruntime", onnx=str(b)), progress=False, overwrite=True)
    assert not any(r.skipped for r in runs) and len(backends) == 1 and backends[0].calls == 14
    assert json.loads((out / "provenance.json").read_text())["model"]["onnx_sha256"] == file_sha256(b)
    (out / "provenance.json").unlink()  # results whose origin is unknown (an older version, another tool)
    with pytest.raises(CKDError, match="no provenance.json .*--overwrite"):
        run_benchmark(ds, out, TrackerSpec(backend="onnxruntime", onnx=str(b)), progress=False)
