"""The one atomic file writer of ckd_ros: write a temporary file beside the target, then rename it.

Every file another process may read while it is being written (cache artifacts and their sidecars,
converted checkpoints, training checkpoints, benchmark results) goes through `atomic_path`: a reader
sees the old file or the complete new one, never a partial one, and an interrupted write leaves only
a hidden `.NAME.*.tmp` that is removed on the way out. The final file gets the mode an ordinary
`open(path, "w")` would give it (0666 minus the umask): `tempfile.mkstemp` creates 0600, which would
make an engine built by the installer unreadable to the node running as another user.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
import threading
from typing import Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting and restoring it; serialised between threads)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """Mode of a newly created regular file: 0o666 & ~umask (0o644 under the usual umask 022)."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: PathLike, fsync: bool = True) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside `path`; when the block succeeds, set the umask mode, fsync and
    `os.replace` it onto `path` (atomic on POSIX and Windows); on any exception delete it.

    The parent directory is created. Raises OSError (PermissionError...) from the file system; the
    caller translates it into a CKDError naming what it was writing.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        yield pathlib.Path(tmp)
        os.chmod(tmp, default_file_mode())
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (see `atomic_path`)."""
    atomic_write_bytes(path, text.encode(encoding))
