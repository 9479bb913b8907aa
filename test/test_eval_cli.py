"""`ckd eval` / `ckd benchmark` command lines: JSON output, table, files, one-line errors."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ckd_ros.cli import main
from ckd_ros.eval import evaluate

REPO = Path(__file__).resolve().parents[1]
GT = [10, 10, 40, 20]


def _lines(rows, sep=","):
    return "\n".join(sep.join(str(v) for v in r) for r in rows) + "\n"


@pytest.fixture()
def lasher(tmp_path):
    """Two sequences, two trackers: Good follows the target, Drift loses it in sequence b."""
    gt = tmp_path / "gt"
    (gt / "annos").mkdir(parents=True)
    (gt / "all_dataset_lashertest.txt").write_text("a\nb")
    far = [300, 300, 40, 20]
    for name in ("a", "b"):
        (gt / "annos" / f"{name}.txt").write_text(_lines([GT] * 4))
    runs = {"Good": {"a": [GT] * 4, "b": [GT, GT, [12, 11, 40, 20], GT]},
            "Drift": {"a": [GT] * 4, "b": [GT, GT, far, far]}}
    for tracker, seqs in runs.items():
        folder = tmp_path / "res" / f"{tracker}_tracking_result"
        folder.mkdir(parents=True)
        for name, rows in seqs.items():
            (folder / f"{name}.txt").write_text(_lines(rows, "\t"))
            (folder / f"{name}_time.txt").write_text("0.01\n" * len(rows))
    return gt, tmp_path / "res" / "Good_tracking_result", tmp_path / "res" / "Drift_tracking_result"


def test_json_prints_one_object(lasher, capsys, tmp_path, monkeypatch):
    gt, good, _ = lasher
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--dataset", "lasher", "--root", str(gt), "--results", str(good), "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)  # the whole of stdout is one JSON object
    assert set(data) == {"PR", "NPR", "SR"}
    assert data == pytest.approx(evaluate(gt, good, "lasher"))
    assert not (tmp_path / "eval_results").exists()  # --json without --out writes no files


def test_json_needs_one_folder(lasher, capsys):
    gt, good, drift = lasher
    code = main(["eval", "--dataset", "lasher", "--root", str(gt), "--results", str(good), str(drift), "--json"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ckd eval: error: --json prints one results folder")


def test_table_and_files(lasher, capsys, tmp_path):
    gt, good, drift = lasher
    out_dir = tmp_path / "out"
    code = main(["eval", "--dataset", "lasher", "--root", str(gt), "--results", str(drift), str(good),
                 "--out", str(out_dir)])
    assert code == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("LasHeR") and table[1].split() == ["Tracker", "PR", "NPR", "SR", "Seqs", "Frames"]
    assert [row.split()[0] for row in table[3:5]] == ["Good", "Drift"]  # ranked by SR, best first
    with open(out_dir / "lasher_metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["tracker"] for r in rows] == ["Good", "Drift"]
    assert float(rows[1]["PR"]) == pytest.approx(evaluate(gt, drift, "lasher")["PR"], abs=1e-4)
    with open(out_dir / "lasher_per_sequence.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    doc = json.loads((out_dir / "lasher_results.json").read_text())
    assert doc["protocol"] == "lasher" and [t["name"] for t in doc["trackers"]] == ["Good", "Drift"]
    assert len(doc["trackers"][0]["curves"]["success"]["values"]) == 21
    for key in ("precision", "norm_precision", "success"):
        png = (out_dir / f"lasher_{key}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_no_plots_flag(lasher, tmp_path, capsys):
    gt, good, _ = lasher
    out_dir = tmp_path / "out"
    assert main(["eval", "--dataset", "lasher", "--root", str(gt), "--results", str(good), "--out", str(out_dir),
                 "--no-plots"]) == 0
    assert not list(out_dir.glob("*.png")) and (out_dir / "lasher_metrics.csv").is_file()


def test_wrong_root_one_line_and_nonzero_exit(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ckd_ros.cli", "eval", "--dataset", "gtot", "--root",
                           str(tmp_path / "nowhere"), "--results", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ckd eval: error: GTOT root") and "--root" in lines[0]
    assert proc.stdout == ""


def test_missing_results_and_bad_benchmark_args(lasher, capsys, tmp_path):
    gt, _, _ = lasher
    assert main(["eval", "--dataset", "lasher", "--root", str(gt), "--results", str(tmp_path / "none")]) == 2
    assert "results folder" in capsys.readouterr().err
    assert main(["benchmark", "--dataset", "lasher", "--root", str(gt), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert main(["benchmark", "--dataset", "lasher", "--root", str(gt), "--checkpoint", str(tmp_path / "x.pth")]) == 2
    assert "x.pth does not exist" in capsys.readouterr().err
