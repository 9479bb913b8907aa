"""Caches as robots deploy them (issue 18, kind 3) and the one atomic writer (issue 15).

- No usable home directory (systemd services, containers run as another user): the default cache
  falls back to a private per-user temp dir and says so in one line; a directory the user chose
  (--cache-dir, CKD_CACHE_DIR) that is not usable is a one-line CacheError naming it and the fix.
- Files written atomically get the mode a plain `open(..., "w")` gives (0666 & ~umask), not
  mkstemp's 0600: an engine built by the installer is readable by the node running as another user.
"""
import os
import pathlib
import stat
import tempfile

import pytest

from ckd_ros import fileio
from ckd_ros.errors import CacheError
from ckd_ros.runtime import cache as cache_mod
from ckd_ros.runtime.cache import ArtifactCache


@pytest.fixture()
def umask():
    def set_mask(mask):
        os.umask(mask)
    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o000, 0o666)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    fileio.atomic_write_text(tmp_path / "a" / "x.json", "{}")
    with fileio.atomic_path(tmp_path / "y.bin") as tmp:
        tmp.write_bytes(b"engine")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for p in (tmp_path / "a" / "x.json", tmp_path / "y.bin"):
        assert stat.S_IMODE(p.stat().st_mode) == mode == stat.S_IMODE(plain.stat().st_mode)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_cache_artifacts_and_sidecars_are_readable_by_others(tmp_path, umask):
    umask(0o022)
    cache = ArtifactCache(tmp_path / "c")
    path, action = cache.ensure(cache.path("onnx", "m.onnx"), {"k": 1}, lambda tmp: tmp.write_bytes(b"onnx"))
    assert action.startswith("built")
    for p in (path, cache_mod.key_path(path)):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def _no_env(monkeypatch):
    monkeypatch.delenv("CKD_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)


def test_unusable_home_falls_back_to_a_private_temp_dir_and_says_so(tmp_path, monkeypatch, caplog):
    _no_env(monkeypatch)
    home = tmp_path / "home_is_a_file"
    home.write_text("")
    monkeypatch.setenv("HOME", str(home))
    notes = []
    cache = ArtifactCache(log=type("L", (), {"warning": staticmethod(notes.append)})())
    root = cache.root
    assert root.is_dir() and os.access(root, os.W_OK)
    assert pathlib.Path(tempfile.gettempdir()) in root.parents
    assert not stat.S_IMODE(root.stat().st_mode) & 0o077  # private: nobody else can plant artifacts
    assert len(notes) == 1 and "\n" not in notes[0]
    assert str(home) in notes[0] and "CKD_CACHE_DIR" in notes[0] and "--cache-dir" in notes[0]
    assert str(root) in notes[0]
    assert ArtifactCache().path("onnx") == root / "onnx"  # same fallback next time (cache reuse)


def test_fallback_refuses_a_temp_dir_someone_else_could_write(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    getuid = getattr(os, "getuid", lambda: os.getpid())
    shared = tmp_path / f"ckd_ros-cache-{getuid()}"
    shared.mkdir()
    shared.chmod(0o777)  # e.g. planted by another user
    chosen = cache_mod.private_temp_cache_dir()
    assert chosen != shared and chosen.parent == tmp_path and not stat.S_IMODE(chosen.stat().st_mode) & 0o077


@pytest.mark.parametrize("via", ["argument", "env"])
def test_chosen_directory_that_is_unusable_is_one_line(tmp_path, monkeypatch, via):
    _no_env(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = blocker / "cache"
    if via == "env":
        monkeypatch.setenv("CKD_CACHE_DIR", str(bad))
        cache = ArtifactCache()
    else:
        cache = ArtifactCache(bad)
    with pytest.raises(CacheError) as info:
        cache.path("onnx")
    msg = str(info.value)
    assert str(bad) in msg and "--cache-dir" in msg and "CKD_CACHE_DIR" in msg and "\n" not in msg
    assert ("CKD_CACHE_DIR)" in msg) == (via == "env")


def test_a_backend_that_needs_no_cache_never_touches_it(tmp_path):
    cache = ArtifactCache(tmp_path / "file" / "c")  # unusable, but never used
    (tmp_path / "file").write_text("")
    assert cache._root is None
