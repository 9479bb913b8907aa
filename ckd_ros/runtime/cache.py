"""Cached build products (TensorRT engines, exported ONNX files) with a metadata sidecar.

Each artifact `X` has a sidecar `X.json` holding the key it was built for plus its size and sha256.
`ArtifactCache.ensure()` returns a valid artifact or (re)builds it, under a per-artifact file lock so
two nodes starting together build once, writing through a temp file + os.replace so a reader never
sees half a file. The sidecar is written last: a crash in between leaves an artifact whose checksum
is not recorded, which the next start rebuilds.

Default location: platformdirs.user_cache_dir("ckd_ros") (override: cache_dir argument or the
CKD_CACHE_DIR environment variable) — never the install directory (read-only on robots), never /tmp
(wiped at boot, so a Jetson would rebuild for minutes after every reboot). When the default is not
usable (no home directory: system services, containers run as another user) the cache falls back to
a private per-user directory under the system temp dir and says so in one line; an explicitly chosen
directory that is not usable is a one-line CacheError (no silent fallback). Artifacts are written by
`ckd_ros.fileio.atomic_path`, so they get the umask's mode (0644 under umask 022), not mkstemp's 0600.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pathlib
import stat
import tempfile
import time
from typing import Callable, Dict, Optional, Tuple, Union

from ckd_ros.errors import CacheError
from ckd_ros.fileio import atomic_path, atomic_write_bytes  # noqa: F401  (re-exported for runtime modules)
from ckd_ros.hashing import file_sha256

LogFn = Callable[[str], None]
PathLike = Union[str, os.PathLike]

_LOG = logging.getLogger("ckd_ros.runtime")


HOW_TO_MOVE = "pass --cache-dir DIR (node: engine.cache_dir) or set CKD_CACHE_DIR to a writable directory"


def default_cache_dir() -> pathlib.Path:
    """$CKD_CACHE_DIR, else platformdirs.user_cache_dir("ckd_ros") (not checked for usability here)."""
    env = os.environ.get("CKD_CACHE_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    import platformdirs

    return pathlib.Path(platformdirs.user_cache_dir("ckd_ros", appauthor=False))


def _unusable(directory: pathlib.Path) -> Optional[str]:
    """Why `directory` cannot hold the cache (created if missing), or None when it can."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    if not os.access(str(directory), os.W_OK | os.X_OK):
        return "not writable by this user"
    return None


def private_temp_cache_dir() -> pathlib.Path:
    """A per-user cache under the system temp dir, created 0700 and used only when this user owns it
    and nobody else can write it (else a fresh mkdtemp): another user cannot plant artifacts in it."""
    getuid = getattr(os, "getuid", None)
    uid = getuid() if getuid is not None else os.getpid()
    candidate = pathlib.Path(tempfile.gettempdir()) / f"ckd_ros-cache-{uid}"
    try:
        candidate.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(str(candidate))
        owned = getuid is None or st.st_uid == uid
        if stat.S_ISDIR(st.st_mode) and owned and not st.st_mode & 0o022:
            return candidate
    except OSError:
        pass
    return pathlib.Path(tempfile.mkdtemp(prefix="ckd_ros-cache-"))


def resolve_cache_dir(root: Optional[PathLike] = None) -> Tuple[pathlib.Path, str]:
    """(usable cache directory, note). The note is "" or one line saying why a fallback is used.

    `root` (a --cache-dir / engine.cache_dir value) or $CKD_CACHE_DIR are the user's choice: when not
    usable they raise CacheError naming the directory and what to do. The platform default falls back
    to `private_temp_cache_dir()` (wiped at reboot, so artifacts are rebuilt after one).
    """
    if root is not None or os.environ.get("CKD_CACHE_DIR"):
        directory = pathlib.Path(root if root is not None else os.environ["CKD_CACHE_DIR"]).expanduser()
        source = "--cache-dir" if root is not None else "CKD_CACHE_DIR"
        why = _unusable(directory)
        if why:
            raise CacheError(f"cache directory {directory} (from {source}) is not usable ({why}): {HOW_TO_MOVE}")
        return directory, ""
    try:
        directory = default_cache_dir()
    except (KeyError, RuntimeError, OSError) as exc:  # no home directory at all
        directory, why = None, f"no home directory ({exc})"
    else:
        why = _unusable(directory)
    if not why:
        return directory, ""
    fallback = private_temp_cache_dir()
    problem = _unusable(fallback)
    if problem:
        raise CacheError(f"no usable cache directory: {directory} ({why}) and {fallback} ({problem}): {HOW_TO_MOVE}")
    return fallback, (f"cache: the user cache dir {directory} is not usable ({why}); using {fallback} for now "
                      f"(wiped at reboot, so exports and engines are rebuilt): {HOW_TO_MOVE} to keep them")


def as_log(log) -> LogFn:
    """Accept None, a logging.Logger / rclpy logger (anything with .info) or a plain callable."""
    if log is None:
        return _LOG.info
    if callable(log) and not hasattr(log, "info"):
        return log
    return log.info


def key_digest(key: Dict) -> str:
    """Stable short digest of a key dict (canonical JSON)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def key_path(path: PathLike) -> pathlib.Path:
    """`engine.plan` -> `engine.plan.json`: the cached artifact's key record (not an export's metadata sidecar,
    which is `ckd_ros.model.onnx_meta.sidecar_path`)."""
    path = pathlib.Path(path)
    return path.with_name(path.name + ".json")


def describe_key_change(old: Dict, new: Dict) -> str:
    diffs = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            diffs.append(f"{k} {old.get(k)!r} -> {new.get(k)!r}")
    return ", ".join(diffs)


def check_artifact(path: PathLike, key: Dict, verify_checksum: bool = True) -> Tuple[bool, str]:
    """(True, "") when `path` exists and was built for `key` intact; else (False, why)."""
    path = pathlib.Path(path)
    if not path.exists():
        return False, "not cached yet"
    side = key_path(path)
    try:
        meta = json.loads(side.read_text())
        old_key = meta["key"]
        size, digest = int(meta["size"]), meta["sha256"]
    except FileNotFoundError:
        return False, "no metadata sidecar (foreign or interrupted write)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"unreadable metadata sidecar ({exc.__class__.__name__})"
    if old_key != key:
        return False, "stale: built for a different key (" + describe_key_change(old_key, key) + ")"
    if path.stat().st_size != size:
        return False, f"corrupt: size {path.stat().st_size} != recorded {size}"
    if verify_checksum and file_sha256(path) != digest:
        return False, "corrupt: sha256 does not match the sidecar"
    return True, ""


def write_sidecar(path: PathLike, key: Dict, extra: Optional[Dict] = None) -> Dict:
    path = pathlib.Path(path)
    meta = {
        "key": key,
        "size": path.stat().st_size,
        "sha256": file_sha256(path),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if extra:
        meta["extra"] = extra
    with atomic_path(key_path(path)) as tmp:
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    return meta


def invalidate(path: PathLike) -> None:
    """Remove an artifact and its sidecar (e.g. the engine failed to deserialise)."""
    for p in (pathlib.Path(path), key_path(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


class ArtifactCache:
    """Build-once store. `produce(tmp_path)` must write the artifact to tmp_path."""

    def __init__(self, root: Optional[PathLike] = None, lock_timeout_s: float = 3600.0, log=None):
        """`root`: the cache directory (None: $CKD_CACHE_DIR or the user cache dir, see resolve_cache_dir);
        `log`: a logger whose `.warning` receives the one-line fallback note (else Python logging)."""
        self._requested = root
        self._root: Optional[pathlib.Path] = None
        self._log = log
        self.lock_timeout_s = lock_timeout_s

    @property
    def root(self) -> pathlib.Path:
        """The cache directory, checked (and chosen, see resolve_cache_dir) on first use: a backend
        that needs no cache (torch) never touches the file system. Raises CacheError."""
        if self._root is None:
            self._root, note = resolve_cache_dir(self._requested)
            if note:  # a warning even under --quiet: a node's logger if given, else Python logging (stderr)
                (getattr(self._log, "warning", None) or _LOG.warning)(note)
        return self._root

    def path(self, *parts: str) -> pathlib.Path:
        return self.root.joinpath(*parts)

    @contextlib.contextmanager
    def lock(self, path: PathLike, log: LogFn):
        from filelock import FileLock, Timeout

        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log(f"waiting for another process building {path.name} (lock {path.name}.lock)")
            try:
                lock.acquire(timeout=self.lock_timeout_s)
            except Timeout as exc:
                raise CacheError(f"timed out after {self.lock_timeout_s:.0f} s waiting for the lock on {path}; "
                               f"remove {path}.lock if no other ckd process is running") from exc
        try:
            yield
        finally:
            lock.release()

    def ensure(self, path: PathLike, key: Dict, produce: Callable[[pathlib.Path], None], *,
               what: str = "artifact", log=None, reject: Optional[Tuple[str, str]] = None,
               extra: Optional[Dict] = None) -> Tuple[pathlib.Path, str]:
        """Return (path, action) with action 'cached' or 'built: <why>'.

        reject=(sha256, reason): the artifact with that checksum proved unusable (e.g. TensorRT could
        not deserialise it); rebuild it unless another process already replaced it meanwhile.
        """
        log = as_log(log)
        path = pathlib.Path(path)

        def usable() -> Tuple[bool, str]:
            ok, why = check_artifact(path, key)
            if ok and reject is not None and read_sidecar(path).get("sha256") == reject[0]:
                return False, reject[1]
            return ok, why

        if usable()[0]:  # fast path without the lock: files are only ever replaced atomically
            return path, "cached"
        try:
            return self._build(path, key, produce, usable, what, log, extra)
        except OSError as exc:
            if not str(getattr(exc, "filename", "") or "").startswith(str(self.root)):
                raise
            raise CacheError(f"cannot write the {what} into the cache {self.root} ({type(exc).__name__}: "
                             f"{exc.strerror or exc}): {HOW_TO_MOVE}") from exc

    def _build(self, path: pathlib.Path, key: Dict, produce, usable, what: str, log: LogFn,
               extra: Optional[Dict]) -> Tuple[pathlib.Path, str]:
        with self.lock(path, log):
            ok, why = usable()
            if ok:
                return path, "cached"
            log(f"building {what} {path.name}: {why}")
            invalidate(path)
            t0 = time.monotonic()
            with atomic_path(path) as tmp:
                produce(tmp)
                if not tmp.exists() or tmp.stat().st_size == 0:
                    raise CacheError(f"building {what} produced no output")
            write_sidecar(path, key, extra)
            log(f"{what} ready in {time.monotonic() - t0:.1f} s: {path}")
            return path, f"built: {why}"


def read_sidecar(path: PathLike) -> Dict:
    try:
        return json.loads(key_path(path).read_text())
    except (OSError, ValueError):
        return {}
