"""Dataset readers and frame listers: the five layouts, file-format quirks, and clear errors."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ckd_ros.errors import CKDError
from ckd_ros.eval import evaluate_tracker, get_protocol, open_dataset
from ckd_ros.frames.textio import read_matrix, read_names
from conftest import shared_path


def _touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _images(folder: Path, n: int, ext=".jpg", fmt="{:06d}"):
    for i in reversed(range(n)):  # created out of order: the lister must sort
        _touch(folder / (fmt.format(i) + ext))


# ---- text files ---------------------------------------------------------------------------
def test_read_matrix_accepts_every_layout(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbf1,2\t3 4\r\n\r\n  5 ,6,, 7\t\t8 \r\n2.09e+02 NaN 1e-1 -4")
    data = read_matrix(path)
    assert data.shape == (3, 4)
    assert data[:2].tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert data[2, 0] == 209.0 and math.isnan(data[2, 1]) and data[2, 3] == -4


def test_read_names_is_verbatim(tmp_path):
    path = _touch(tmp_path / "list.txt", "a\r\nleftgirl'swhitebag\r\n\r\n  spaced \nlast")
    assert read_names(path) == ["a", "leftgirl'swhitebag", "spaced", "last"]


# ---- layouts ------------------------------------------------------------------------------
def test_gtot_corners_and_init_box(tmp_path):
    _touch(tmp_path / "SequencesName.txt", "BlackCar")
    _touch(tmp_path / "BlackCar" / "groundTruth_v.txt", "209 155 309 218\n203 154 298 217\n")
    _touch(tmp_path / "BlackCar" / "groundTruth_i.txt", "210 155 314 214\n204 155 306 214")
    ds = open_dataset("GTOT", tmp_path)
    gt = ds.ground_truth("BlackCar")
    assert gt.boxes[0].tolist() == [[209, 155, 100, 63], [203, 154, 95, 63]]
    assert gt.boxes[1][0].tolist() == [210, 155, 104, 59]
    assert gt.init_box.tolist() == [209, 155, 100, 63] and gt.stride == 1


def test_rgbt234_polygon_ground_truth_and_init_file(tmp_path):
    seq = tmp_path / "afterrain"
    _touch(tmp_path / "SequencesName.txt", "afterrain\r\n")
    _touch(seq / "visible.txt", "10,20,50,20,50,60,10,60\r\n12,22,52,22,52,62,12,62\r\n\r\n")
    _touch(seq / "infrared.txt", "11,21,40,40\r\n13,23,40,40")
    _touch(seq / "init.txt", "144,53,10,80\r\n")
    gt = open_dataset("rgbt234", tmp_path).ground_truth("afterrain")
    assert gt.boxes[0].tolist() == [[10, 20, 40, 40], [12, 22, 40, 40]]  # polygon -> min/max box
    assert gt.init_box.tolist() == [144, 53, 10, 80]  # CKD initialises from init.txt


def test_vtuav_nested_root_and_stride(tmp_path):
    seq = tmp_path / "test" / "short-term" / "bus1"
    _touch(seq / "rgb.txt", "585 94 66 83\n589 101 66 79\n")
    _touch(seq / "ir.txt", "582 88 67 80\n587 106 67 68\n\n")
    _touch(tmp_path / "test" / "short-term" / "no_gt" / "readme.txt")  # folders without rgb.txt are skipped
    ds = open_dataset("vtuav", tmp_path)
    assert ds.names == ["bus1"]
    gt = ds.ground_truth("bus1")
    assert gt.stride == 10 and gt.length == 2 and gt.init_box.tolist() == [585, 94, 66, 83]


def test_lasher_toolkit_and_dataset_layouts(tmp_path):
    name = "leftgirl'swhitebag"
    _touch(tmp_path / "tk" / "all_dataset_lashertest.txt", f"2boys\n{name}")
    _touch(tmp_path / "tk" / "annos" / "2boys.txt", "1,2,3,4")
    _touch(tmp_path / "tk" / "annos" / f"{name}.txt", "0,367,70,39\n1,367,70,39\n")
    ds = open_dataset("lasher", tmp_path / "tk")
    assert ds.names == ["2boys", name] and ds.ground_truth(name).length == 2
    _touch(tmp_path / "ds" / "testingset" / "2boys" / "init.txt", "1,2,3,4\n5,6,7,8")
    _touch(tmp_path / "ds" / "trainingset" / "other" / "init.txt", "1,2,3,4")
    ds = open_dataset("lasher", tmp_path / "ds")
    assert ds.names == ["2boys"] and ds.ground_truth("2boys").length == 2


def test_rgbt210_discovers_sequence_folders(tmp_path):
    _touch(tmp_path / "b" / "init.txt", "1,2,3,4")
    _touch(tmp_path / "a" / "init.txt", "1,2,3,4")
    assert open_dataset("rgbt210", tmp_path).names == ["a", "b"]


def test_sequence_selection(tmp_path):
    for name in ("a", "b", "c"):
        _touch(tmp_path / name / "init.txt", "1,2,3,4")
    assert open_dataset("rgbt210", tmp_path, ["c", "a"]).names == ["c", "a"]
    listing = _touch(tmp_path / "mine.txt", "b\n")
    assert open_dataset("rgbt210", tmp_path, listing).names == ["b"]
    with pytest.raises(CKDError, match="sequence list .*nope.txt does not exist"):
        open_dataset("rgbt210", tmp_path, tmp_path / "nope.txt")


# ---- errors -------------------------------------------------------------------------------
def test_wrong_root_errors(tmp_path):
    with pytest.raises(CKDError, match=r"GTOT root .*missing does not exist; pass --root the folder"):
        open_dataset("gtot", tmp_path / "missing")
    with pytest.raises(CKDError, match="is not a folder"):
        open_dataset("gtot", _touch(tmp_path / "file.txt"))
    _touch(tmp_path / "wrong" / "x" / "visible.txt", "1,2,3,4")
    with pytest.raises(CKDError, match=r"does not look like a GTOT root: found no SequencesName.txt"):
        open_dataset("gtot", tmp_path / "wrong")


def test_missing_sequence_names_the_list_and_file(tmp_path):
    _touch(tmp_path / "SequencesName.txt", "there\nghost")
    _touch(tmp_path / "there" / "visible.txt", "1,2,3,4")
    _touch(tmp_path / "there" / "infrared.txt", "1,2,3,4")
    with pytest.raises(CKDError, match=r"sequence 'ghost' \(listed in .*SequencesName.txt\) has no ground "
                                       r"truth: .*ghost/visible.txt not found"):
        open_dataset("rgbt234", tmp_path)


def test_ground_truth_problems(tmp_path):
    seq = tmp_path / "s"
    _touch(seq / "visible.txt", "1,2,3,4\n1,2,3,4")
    _touch(seq / "infrared.txt", "1,2,3,4")
    with pytest.raises(CKDError, match="differ in length"):
        open_dataset("rgbt234", tmp_path).ground_truth("s")
    _touch(seq / "infrared.txt", "")
    with pytest.raises(CKDError, match="infrared.txt is empty"):
        open_dataset("rgbt234", tmp_path).ground_truth("s")
    _touch(seq / "infrared.txt", "1,2,3\n1,2,3")
    with pytest.raises(CKDError, match="3 values per line"):
        open_dataset("rgbt234", tmp_path).ground_truth("s")


# ---- frames -------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol,gt_files,dirs", [
    ("gtot", {"groundTruth_v.txt": "1 2 3 4", "groundTruth_i.txt": "1 2 3 4"}, ("v", "i")),
    ("rgbt234", {"visible.txt": "1,2,3,4", "infrared.txt": "1,2,3,4"}, ("visible", "infrared")),
    ("rgbt210", {"init.txt": "1,2,3,4"}, ("visible", "infrared")),
    ("lasher", {"init.txt": "1,2,3,4"}, ("visible", "infrared")),
    ("vtuav", {"rgb.txt": "1 2 3 4", "ir.txt": "1 2 3 4"}, ("rgb", "ir")),
])
def test_frame_lister(tmp_path, protocol, gt_files, dirs):
    seq = tmp_path / ("testingset" if protocol == "lasher" else "") / "seq1"
    for name, text in gt_files.items():
        _touch(seq / name, text)
    _images(seq / dirs[0], 3)
    _images(seq / dirs[1], 3, ext=".png")
    _touch(seq / dirs[0] / "notes.txt")
    frames = open_dataset(protocol, tmp_path).frames("seq1")
    assert [p.name for p in frames.rgb] == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert [p.parent.name for p in frames.tir] == [dirs[1]] * 3


def test_frame_lister_errors(tmp_path):
    seq = tmp_path / "s"
    _touch(seq / "init.txt", "1,2,3,4")
    ds = open_dataset("rgbt210", tmp_path)
    with pytest.raises(CKDError, match=r"no image folder .*s/visible/"):
        ds.frames("s")
    _images(seq / "visible", 3)
    _images(seq / "infrared", 2)
    with pytest.raises(CKDError, match="3 visible but 2 infrared images"):
        ds.frames("s")


def test_real_vtuav_clip_frames():
    root = shared_path("data", "vtuav_bus1")
    ds = open_dataset("vtuav", root.parent, ["vtuav_bus1"])
    frames = ds.frames("vtuav_bus1")
    assert len(frames.rgb) == len(frames.tir) == 101  # thermal in ir_gray/
    gt = ds.ground_truth("vtuav_bus1")
    assert gt.length == 11 and (gt.length - 1) * gt.stride + 1 == len(frames.rgb)


# ---- LasHeR attributes --------------------------------------------------------------------
def test_lasher_attribute_breakdown(tmp_path):
    flags = {"a": [0] * 19, "b": [0] * 19, "c": [0] * 19}
    flags["a"][1] = flags["b"][1] = 1  # PO: a and b
    flags["c"][18] = 1  # ARC: c only
    box = "10,10,40,20"
    for name, f in flags.items():
        _touch(tmp_path / "annos" / f"{name}.txt", "\n".join([box] * 2))
        _touch(tmp_path / "AttriSeqsTxt" / f"{name}.txt", ",".join(map(str, f)))
    _touch(tmp_path / "res" / "a.txt", f"{box}\n{box}")
    _touch(tmp_path / "res" / "b.txt", f"{box}\n500,500,40,20")
    _touch(tmp_path / "res" / "c.txt", f"{box}\n500,500,40,20")
    result = evaluate_tracker(open_dataset("lasher", tmp_path), tmp_path / "res")
    assert set(result.attributes) == {"PO", "ARC"}
    assert result.attributes["PO"]["n"] == 2 and result.attributes["PO"]["PR"] == pytest.approx(75.0)
    assert result.attributes["ARC"]["PR"] == pytest.approx(50.0)
    protocol = get_protocol("lasher")
    expect, _ = protocol.summarise([s for s in result.sequences if s.name in ("a", "b")])
    assert result.attributes["PO"]["SR"] == pytest.approx(expect["SR"])
    assert np.isclose(result.metrics["PR"], 100 * 4 / 6)
