"""Engine/ONNX cache: key, location, atomic writes, lock, and the rebuild decisions (fake builder)."""
from __future__ import annotations

import json
import multiprocessing
import pathlib
import threading
import time

import pytest

from ckd_ros.errors import CKDError
from ckd_ros.runtime import cache as cache_mod
from ckd_ros.runtime.cache import ArtifactCache, check_artifact, key_path
from ckd_ros.runtime.engine_cache import EngineKey, ensure_engine, load_engine, make_engine_key
from ckd_ros.runtime.gpu import GpuInfo

ORIN = GpuInfo(True, "test", name="Orin (nvgpu)", compute_capability=(8, 7), driver_version="12.2",
               device_count=1, source="test", l4t_release="R36.3.0", sm_count=16,
               jetson_model="NVIDIA Jetson AGX Orin Developer Kit")


def key_for(**changes) -> EngineKey:
    base = dict(trt_module="tensorrt", trt_version="10.3.0", gpu=ORIN, precision="fp16", workspace_mb=2048)
    base.update(changes)
    return make_engine_key("ab" * 32, **base)


class FakeBuilder:
    """Counts builds; returns an 'engine' whose bytes encode the key (so a test can read it back)."""

    def __init__(self, payload=b"ENGINE", delay=0.0):
        self.calls, self.payload, self.delay = 0, payload, delay

    def __call__(self, onnx_path: pathlib.Path, timing_cache: pathlib.Path, out: pathlib.Path) -> bytes:
        self.calls += 1
        time.sleep(self.delay)
        return self.payload + b"#%d" % self.calls


@pytest.fixture()
def onnx_file(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"not really onnx, only hashed")
    return p


def test_key_holds_every_field_that_makes_an_engine_foreign():
    k = key_for().as_dict()
    assert k["onnx_sha256"] == "ab" * 32
    assert (k["trt_version"], k["gpu_name"], k["compute_capability"]) == ("10.3.0", "Orin (nvgpu)", "8.7")
    assert (k["cuda_driver"], k["l4t_release"], k["sm_count"]) == ("12.2", "R36.3.0", "16")
    assert k["jetson_model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert not any("runtime" in f or "python" in f for f in k)  # nothing from binding versions
    assert (k["precision"], k["workspace_mb"], k["trt_module"]) == ("fp16", 2048, "tensorrt")
    # each field changes the key; the slot (file name) only for what may coexist on one machine
    assert key_for(precision="fp32").slot_name() != key_for().slot_name()
    assert key_for(trt_version="10.4.0").slot_name() == key_for().slot_name()
    assert key_for(trt_version="10.4.0") != key_for()
    assert key_for(workspace_mb=1024) != key_for()
    other_gpu = GpuInfo(True, "t", name="NVIDIA RTX 4090", compute_capability=(8, 9))
    assert key_for(gpu=other_gpu).slot_name() != key_for().slot_name()
    assert "orin-nvgpu-sm87" in key_for().slot_name()


def test_default_cache_dir_is_user_cache_not_tmp(monkeypatch):
    import platformdirs

    monkeypatch.delenv("CKD_CACHE_DIR", raising=False)
    d = cache_mod.default_cache_dir()
    assert d == pathlib.Path(platformdirs.user_cache_dir("ckd_ros", appauthor=False))
    assert not str(d).startswith("/tmp")
    assert "site-packages" not in str(d) and not str(d).startswith(str(pathlib.Path(cache_mod.__file__).parents[2]))
    monkeypatch.setenv("CKD_CACHE_DIR", "/somewhere/else")
    assert cache_mod.default_cache_dir() == pathlib.Path("/somewhere/else")


def test_build_then_cached(tmp_path, onnx_file):
    cache, build, logs = ArtifactCache(tmp_path / "c"), FakeBuilder(), []
    path, action = ensure_engine(onnx_file, key_for(), build, cache, log=logs.append)
    assert action == "built: not cached yet" and build.calls == 1
    assert path.read_bytes() == b"ENGINE#1"
    meta = json.loads(key_path(path).read_text())
    assert meta["key"] == key_for().as_dict() and meta["size"] == len(b"ENGINE#1")
    path2, action2 = ensure_engine(onnx_file, key_for(), build, cache, log=logs.append)
    assert (path2, action2, build.calls) == (path, "cached", 1)
    assert any("building TensorRT engine" in m and "not cached yet" in m for m in logs)
    assert not list(path.parent.glob("*.tmp")), "temp files left behind"


def test_stale_engine_is_rebuilt_with_one_line_saying_why(tmp_path, onnx_file):
    cache, build = ArtifactCache(tmp_path), FakeBuilder()
    path, _ = ensure_engine(onnx_file, key_for(), build, cache, log=lambda m: None)
    logs = []
    path2, action = ensure_engine(onnx_file, key_for(trt_version="10.4.0"), build, cache, log=logs.append)
    assert path2 == path and build.calls == 2 and action.startswith("built: stale")
    why = [m for m in logs if m.startswith("building")]
    assert len(why) == 1 and "trt_version '10.3.0' -> '10.4.0'" in why[0]
    assert json.loads(key_path(path).read_text())["key"]["trt_version"] == "10.4.0"


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(b"ENGINF#1"), "sha256"),           # same size, flipped byte
    (lambda p: p.write_bytes(b"ENG"), "size"),                   # truncated copy
    (lambda p: key_path(p).unlink(), "no metadata sidecar"),  # engine dropped in from elsewhere
    (lambda p: key_path(p).write_text("{not json"), "unreadable"),
    (lambda p: p.unlink(), "not cached"),
])
def test_corrupt_or_foreign_engine_is_rebuilt(tmp_path, onnx_file, damage, reason):
    cache, build = ArtifactCache(tmp_path), FakeBuilder()
    path, _ = ensure_engine(onnx_file, key_for(), build, cache, log=lambda m: None)
    damage(path)
    ok, why = check_artifact(path, key_for().as_dict())
    assert not ok and reason in why
    logs = []
    _, action = ensure_engine(onnx_file, key_for(), build, cache, log=logs.append)
    assert build.calls == 2 and reason in action
    assert check_artifact(path, key_for().as_dict()) == (True, "")


def test_deserialisation_failure_rebuilds_once(tmp_path, onnx_file):
    cache, build = ArtifactCache(tmp_path), FakeBuilder()
    ensure_engine(onnx_file, key_for(), build, cache, log=lambda m: None)  # engine #1 in the cache
    seen = []

    def deserialize(data: bytes):
        seen.append(data)
        return None if data.endswith(b"#1") else {"engine": data}  # #1 came from "another TensorRT"

    logs = []
    engine, path, action = load_engine(onnx_file, key_for(), build, deserialize, cache, log=logs.append)
    assert engine == {"engine": b"ENGINE#2"} and build.calls == 2
    assert action == "built: cached engine failed to deserialise"
    assert sum("failed to deserialise" in m for m in logs) >= 1
    # a freshly built engine that still does not deserialise is an error, not a loop
    with pytest.raises(CKDError, match="rebuilt engine"):
        load_engine(onnx_file, key_for(), build, lambda data: None, cache, log=lambda m: None)
    assert build.calls == 3


def test_failed_build_leaves_no_partial_engine(tmp_path, onnx_file):
    cache = ArtifactCache(tmp_path)

    def broken(onnx_path, tc, out):
        raise CKDError("parser said no")

    with pytest.raises(CKDError, match="parser said no"):
        ensure_engine(onnx_file, key_for(), broken, cache, log=lambda m: None)
    engines = tmp_path / "engines"
    assert [p.name for p in engines.iterdir() if not p.name.endswith(".lock")] == []


def test_concurrent_threads_build_once(tmp_path, onnx_file):
    cache, build = ArtifactCache(tmp_path), FakeBuilder(delay=0.3)
    results, logs = [], []

    def worker():
        results.append(ensure_engine(onnx_file, key_for(), build, cache, log=logs.append))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert build.calls == 1
    assert sorted(a for _, a in results) == ["built: not cached yet", "cached", "cached"]
    assert any("waiting for another process" in m for m in logs)


def _proc_worker(root, onnx_file, counter_dir, q):
    def build(onnx_path, tc, out):
        (pathlib.Path(counter_dir) / f"build-{multiprocessing.current_process().pid}").touch()
        time.sleep(0.5)
        return b"ENGINE"

    path, action = ensure_engine(onnx_file, key_for(), build, ArtifactCache(root), log=lambda m: None)
    q.put(action)


def test_concurrent_processes_build_once(tmp_path, onnx_file):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    counter = tmp_path / "count"
    counter.mkdir()
    procs = [ctx.Process(target=_proc_worker, args=(str(tmp_path / "c"), str(onnx_file), str(counter), q))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(list(counter.iterdir())) == 1
    assert sorted(q.get(timeout=5) for _ in procs) == ["built: not cached yet", "cached"]


def test_lock_timeout_is_a_clear_error(tmp_path, onnx_file):
    from filelock import FileLock

    cache = ArtifactCache(tmp_path, lock_timeout_s=0.2)
    slot = tmp_path / "engines" / key_for().slot_name()
    slot.parent.mkdir(parents=True)
    held = FileLock(str(slot) + ".lock")
    t = threading.Thread(target=held.acquire)  # held by another thread = another owner
    t.start()
    t.join()
    try:
        with pytest.raises(CKDError, match="waiting for the lock"):
            ensure_engine(onnx_file, key_for(), FakeBuilder(), cache, log=lambda m: None)
    finally:
        t = threading.Thread(target=held.release)
        t.start()
        t.join()


def test_l4t_release_parsing(tmp_path):
    from ckd_ros.runtime.gpu import parse_l4t_release, read_l4t_release

    line = "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, DATE: Mon May  6"
    assert parse_l4t_release(line) == "R36.3.0"
    assert parse_l4t_release("# R35 (release), REVISION: 4.1, GCID: 33958178") == "R35.4.1"
    assert parse_l4t_release("garbage") is None
    f = tmp_path / "nv_tegra_release"
    f.write_text(line + "\n")
    assert read_l4t_release(str(f)) == "R36.3.0"
    assert read_l4t_release(str(tmp_path / "missing")) is None
