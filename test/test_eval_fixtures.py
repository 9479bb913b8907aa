"""The shared evaluation fixtures: every expected number within 0.1 point, per-sequence values exact."""
from __future__ import annotations

import json

import pytest

from ckd_ros.eval import evaluate, evaluate_tracker, open_dataset
from conftest import SHARED, shared_path

FIXTURES = ("gtot", "lasher", "rgbt234", "vtuav")


def _cases():
    # Collected lazily from whatever fixtures exist; a missing tree gives one case that skips/fails.
    cases = []
    for name in FIXTURES:
        path = SHARED / "fixtures" / "eval" / name / "expected.json"
        if not path.is_file():
            cases.append(pytest.param(name, None, id=f"{name}-missing"))
            continue
        for tracker in json.loads(path.read_text())["trackers"]:
            cases.append(pytest.param(name, tracker["name"], id=f"{name}-{tracker['name']}"))
    return cases


def _expected(fixture: str):
    return json.loads(shared_path("fixtures", "eval", fixture, "expected.json").read_text())


@pytest.mark.parametrize("fixture,tracker", _cases())
def test_expected_numbers(fixture, tracker):
    spec = _expected(fixture)
    assert tracker is not None
    entry = next(t for t in spec["trackers"] if t["name"] == tracker)
    base = shared_path("fixtures", "eval", fixture)
    got = evaluate(base / spec["dataset_dir"], base / entry["results_dir"], spec["protocol"])
    assert set(got) == set(spec["metrics"])
    for metric, value in entry["expected"].items():
        assert got[metric] == pytest.approx(value, abs=spec["tolerance"]), metric
        # the reference reproduces the toolkits exactly; we should agree far inside the tolerance
        assert got[metric] == pytest.approx(value, abs=1e-3), metric


@pytest.mark.parametrize("fixture,tracker", [("gtot", "HMFT"), ("gtot", "MaCNet"), ("lasher", "mfDiMP"),
                                             ("rgbt234", "SynthC"), ("vtuav", "SynthV1")])
def test_per_sequence_values(fixture, tracker):
    """Per-sequence numbers of the reference evaluator (counts for GTOT, percent otherwise)."""
    spec = _expected(fixture)
    base = shared_path("fixtures", "eval", fixture)
    per_seq = json.loads((base / "expected_per_sequence.json").read_text())["trackers"][tracker]
    entry = next(t for t in spec["trackers"] if t["name"] == tracker)
    result = evaluate_tracker(open_dataset(spec["protocol"], base / spec["dataset_dir"]),
                              base / entry["results_dir"])
    assert sorted(s.name for s in result.sequences) == sorted(per_seq)
    for seq in result.sequences:
        exp = per_seq[seq.name]
        assert seq.length == exp["frames"]
        if fixture == "gtot":
            assert seq.counts["precision"][10] == exp["n_err_lt_5"]  # 0:0.5:25, index 10 = 5 px
            assert seq.counts["success"][25] == exp["n_iou_gt_0.5"]  # 0:0.02:1, index 25 = 0.5
        else:
            got = result.per_sequence[seq.name]
            names = {"PR": "PR", "NPR": "NPR", "SR": "SR"} if fixture == "lasher" else {"MPR": "PR", "MSR": "SR"}
            for ours, theirs in names.items():
                assert got[ours] == pytest.approx(exp[theirs], abs=1e-3), (seq.name, ours)


def test_results_with_time_files_are_ignored():
    """SynthB holds <seq>_time.txt beside every <seq>.txt; they must not be read as results."""
    folder = shared_path("fixtures", "eval", "rgbt234", "results", "SynthB")
    assert any(folder.glob("*_time.txt"))
    result = evaluate_tracker(open_dataset("rgbt234", folder.parent.parent / "gt"), folder)
    assert len(result.sequences) == 234 and result.frames == 116650
