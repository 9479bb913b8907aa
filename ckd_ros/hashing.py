"""File hashing shared by checkpoint conversion, ONNX export and the engine cache."""
from __future__ import annotations

import hashlib


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
