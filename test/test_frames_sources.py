"""Frame sources: natural frame order everywhere frames are listed, videos read to the end of the stream,
the one frame reader (16-bit stays 16-bit, one-line FrameErrors), in-memory arrays, and training that
skips unreadable frames (counted, logged once, one-line abort above data.max_unreadable_fraction)."""
from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest

from ckd_ros.errors import CKDError, FrameError
from ckd_ros.frames.datasets import LasHeR
from ckd_ros.frames.folders import ArraySource, FrameSource
from ckd_ros.frames.reader import list_images, natural_key, natural_sorted, read_rgb, read_thermal, read_thermal_raw
from ckd_ros.frames.thermal import ThermalNormalizer


@pytest.mark.parametrize("names, expected", [
    (["10.png", "2.png", "1.png"], ["1.png", "2.png", "10.png"]),  # ffmpeg %d.png
    (["000010.jpg", "9.jpg", "000002.jpg", "1.jpg"], ["1.jpg", "000002.jpg", "9.jpg", "000010.jpg"]),  # mixed padding
    (["img10.png", "img9.png", "IMG8.png"], ["IMG8.png", "img9.png", "img10.png"]),  # prefix, any case
    (["f_1_10.png", "f_1_9.png", "f_0_99.png"], ["f_0_99.png", "f_1_9.png", "f_1_10.png"]),  # several runs
    (["01.png", "1.png"], ["01.png", "1.png"]),  # equal numbers: a total, deterministic order
])
def test_natural_order(names, expected):
    assert natural_sorted(names) == expected
    assert sorted(names, key=natural_key) == expected


def write_frames(folder: pathlib.Path, names, values, dtype=np.uint8):
    folder.mkdir(parents=True, exist_ok=True)
    for name, v in zip(names, values):
        cv2.imwrite(str(folder / name), np.full((8, 10), v, dtype))


def test_folder_source_lists_frames_in_numeric_order(tmp_path):
    names = [f"{i}.png" for i in range(1, 13)]
    write_frames(tmp_path / "f", names, range(10, 130, 10))
    (tmp_path / "f" / "notes.txt").write_text("not a frame")
    (tmp_path / "f" / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path / "f")] == names
    frames = list(FrameSource(tmp_path / "f"))
    assert [int(f[0, 0, 0]) for f in frames] == list(range(10, 130, 10))
    assert frames[0].shape == (8, 10, 3) and frames[0].dtype == np.uint8


def test_dataset_and_training_readers_use_the_same_order(tmp_path):
    seq = tmp_path / "root" / "seq"
    names = [f"{i}.png" for i in range(1, 12)]
    write_frames(seq / "visible", names, range(11))
    write_frames(seq / "infrared", names, range(100, 111))
    (seq / "init.txt").write_text("1,1,4,4\n" * 11)
    frames = LasHeR(tmp_path / "root").frames("seq")
    assert [p.name for p in frames.rgb] == names and [p.name for p in frames.tir] == names
    rgb, tir = frames.read(10)
    assert rgb[0, 0].tolist() == [10, 10, 10] and tir[0, 0].tolist() == [110, 110, 110]
    from ckd_ros.train.sources import folder_sequences

    (train,) = folder_sequences("lasher", tmp_path / "root")
    assert [int(train.frames(i)[0][0, 0, 0]) for i in range(11)] == list(range(11))


def test_raw_video_stream_is_read_to_the_end(tmp_path):
    """A raw MJPEG stream: OpenCV reports a nonsense frame count; every frame is read anyway."""
    path = tmp_path / "camera.mjpeg"
    with open(path, "wb") as fh:
        for i in range(7):
            fh.write(cv2.imencode(".jpg", np.full((32, 48, 3), 30 * i, np.uint8))[1].tobytes())
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) != 7  # the metadata is wrong (this is the point)
    cap.release()
    src = FrameSource(path)
    assert len(src) == 7 and 0 < src.fps <= 1000
    frames = list(src)
    assert len(frames) == 7 and frames[0].shape == (32, 48, 3)
    assert [int(round(f.mean() / 30)) for f in frames] == list(range(7))


def test_sixteen_bit_thermal_stays_sixteen_bit(tmp_path):
    counts = np.arange(80, dtype=np.uint16).reshape(8, 10) * 700 + 1000
    cv2.imwrite(str(tmp_path / "t.png"), counts)
    raw = read_thermal_raw(tmp_path / "t.png")
    assert raw.dtype == np.uint16 and np.array_equal(raw, counts)
    np.testing.assert_array_equal(read_thermal(tmp_path / "t.png"), ThermalNormalizer()(counts))
    src = FrameSource(tmp_path, unchanged=True)
    assert next(iter(src)).dtype == np.uint16
    converted = FrameSource(tmp_path, normalizer=ThermalNormalizer())
    np.testing.assert_array_equal(next(iter(converted)), ThermalNormalizer()(counts))
    colour16 = np.zeros((4, 4, 3), np.uint16)
    colour16[..., 2] = 65535  # red, BGR order in the file
    cv2.imwrite(str(tmp_path / "c.png"), colour16)
    assert read_rgb(tmp_path / "c.png")[0, 0].tolist() == [255, 0, 0]


def test_unreadable_frames_are_one_line_frame_errors(tmp_path):
    good = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes()
    (tmp_path / "bad.jpg").write_bytes(good[:60])
    (tmp_path / "empty.png").write_bytes(b"")
    for path, text in ((tmp_path / "bad.jpg", "truncated"), (tmp_path / "empty.png", "truncated"),
                       (tmp_path / "missing.png", "does not exist")):
        for read in (read_rgb, read_thermal_raw, read_thermal):
            with pytest.raises(FrameError) as err:
                read(path)
            assert text in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(FrameError, match="no images"):
        FrameSource(tmp_path / "nothing")


def test_array_source():
    frames = np.stack([np.full((4, 5), v, np.uint16) for v in (1000, 2000, 3000)])
    frames[:, 0, 0] = 5000
    src = ArraySource(frames, fps=9.0, normalizer=ThermalNormalizer("minmax"))
    assert len(src) == 3 and src.fps == 9.0
    out = list(src)
    assert out[0].shape == (4, 5, 3) and out[0][0, 0, 0] == 255 and out[0][1, 1, 0] == 0
    assert ArraySource(frames[..., None])[1].shape == (4, 5)  # HxWx1 -> HxW, unconverted


# ---- training on damaged frames ----------------------------------------------------------------

def lasher_train(root: pathlib.Path, bad: int, n: int = 24):
    rng = np.random.default_rng(3)
    for k in range(2):
        seq = root / f"seq{k}"
        (seq / "visible").mkdir(parents=True)
        (seq / "infrared").mkdir()
        rows = []
        for i in range(n):
            rgb = rng.integers(0, 120, (96, 128, 3), dtype=np.uint8)
            tir = rng.integers(0, 120, (96, 128), dtype=np.uint8)
            x, y = 20 + 2 * i, 30
            rgb[y:y + 20, x:x + 24] = (230, 60, 40)
            tir[y:y + 20, x:x + 24] = 240
            rows.append(f"{x},{y},24,20")
            cv2.imwrite(str(seq / "visible" / f"{i}.jpg"), rgb)
            cv2.imwrite(str(seq / "infrared" / f"{i}.jpg"), tir)
        (seq / "init.txt").write_text("\n".join(rows) + "\n")
    for i in range(bad):  # truncated files, as in a damaged download
        path = root / "seq0" / "visible" / f"{i}.jpg"
        path.write_bytes(path.read_bytes()[:200])


def overrides(root, out, workers, fraction):
    return [f"data.datasets=[{{type: lasher, root: '{root}'}}]", f"data.num_workers={workers}",
            "data.samples_per_epoch=16", "optim.epochs=1", f"output.dir={out}",
            f"data.max_unreadable_fraction={fraction}"]


@pytest.mark.torch
def test_training_skips_and_counts_unreadable_frames(tmp_path, capsys):
    from ckd_ros.train.config import load_config
    from ckd_ros.train.dataset import PairDataset, UnreadableFrames, build_augment, build_specs
    from ckd_ros.train.sources import build_sources

    lasher_train(tmp_path / "ds", bad=3)
    cfg = load_config("config/train_tiny.yaml", overrides(tmp_path / "ds", tmp_path / "run", 0, 0.1))
    data = cfg["data"]
    ds = PairDataset(build_sources(data["datasets"]), 64, build_specs(data, 64, 128), build_augment(data), 16, 0,
                     max_interval=10, min_length=5)
    logs = []
    account = UnreadableFrames(ds, 0.1, logs.append)
    for i in range(64):
        sample = ds[i]
        assert set(sample) >= {"template_rgb", "search_tir", "unreadable"}
        account.update({"unreadable": sample["unreadable"][None]})
    assert 1 <= len(account.found) <= 3 and account.found <= {(0, 0), (0, 1), (0, 2)}
    assert len(logs) == 1 and "skipping unreadable training frames" in logs[0] and "truncated" in logs[0]
    fresh = PairDataset(build_sources(data["datasets"]), 64, build_specs(data, 64, 128), build_augment(data), 16,
                        0, max_interval=10, min_length=5)
    strict = UnreadableFrames(fresh, 0.01, logs.append)  # 1 % of 48 frames: the first one found is too many
    with pytest.raises(CKDError, match=r"of 48 training frames are unreadable .*data.max_unreadable_fraction"):
        for i in range(64):
            strict.update({"unreadable": fresh[i]["unreadable"][None]})


@pytest.mark.torch
@pytest.mark.parametrize("fraction, ok", [(0.1, True), (0.02, False)])
def test_ckd_train_with_workers_skips_or_aborts_in_one_line(tmp_path, fraction, ok):
    """Three truncated files of 48 (6 %) with two DataLoader workers: finished, or (limit 2 %: one file
    found is too many) one CKDError line, raised in the main process (no worker traceback)."""
    from ckd_ros.train.trainer import train

    lasher_train(tmp_path / "ds", bad=3)
    args = overrides(tmp_path / "ds", tmp_path / "run", 2, fraction) + ["data.samples_per_epoch=64"]
    if ok:
        assert train("config/train_tiny.yaml", args).is_file()
        return
    with pytest.raises(CKDError) as err:
        train("config/train_tiny.yaml", args)
    assert "training frames are unreadable" in str(err.value) and "\n" not in str(err.value)


def test_ckd_track_reads_raw_video_streams_to_the_end(tmp_path, monkeypatch):
    """`ckd track --rgb VIDEO --thermal VIDEO` on raw MJPEG streams (no usable frame count): every frame tracked."""
    import argparse

    from ckd_ros.runtime.base import Backend
    from ckd_ros.tracking import cli as track_cli

    class StillBackend(Backend):
        name = "still"

        def infer(self, z_rgb, z_tir, x_rgb, x_tir):
            score = np.zeros((1, 1, 16, 16), np.float32)
            score[0, 0, 8, 8] = 0.9
            return {"score_map": score, "size_map": np.full((1, 2, 16, 16), 0.1, np.float32),
                    "offset_map": np.zeros((1, 2, 16, 16), np.float32)}

    for name in ("rgb", "tir"):
        with open(tmp_path / f"{name}.mjpeg", "wb") as fh:
            for i in range(9):
                img = np.full((64, 80, 3), 20 * i, np.uint8)
                img[20:40, 20 + i:40 + i] = 250
                fh.write(cv2.imencode(".jpg", img)[1].tobytes())
    monkeypatch.setattr(track_cli, "_open_backend", lambda args: StillBackend())
    parser = argparse.ArgumentParser()
    track_cli.register(parser.add_subparsers())
    out = tmp_path / "boxes.txt"
    args = parser.parse_args(["track", "--rgb", str(tmp_path / "rgb.mjpeg"), "--thermal", str(tmp_path / "tir.mjpeg"),
                              "--init", "20,20,20,20", "--out", str(out), "--quiet", "--onnx", "unused.onnx"])
    assert args.func(args) == 0
    assert np.loadtxt(out).shape == (9, 4)
