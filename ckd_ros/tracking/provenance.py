"""Where a result set came from, and whether it is finished.

Every result set gets a JSON file beside it (`ckd track`: `<out stem>.provenance.json`; `ckd benchmark`:
`<results dir>/provenance.json`) holding the model (file names and sha256 of the checkpoint / ONNX file,
preset), the backend and precision, the tracker parameters, the thermal conversion, the ckd_ros version,
and the run's `status`: `running`, `partial` (interrupted: the finished frames/sequences are kept) or
`complete`. `differences()` compares the parts that decide the boxes (the `IDENTITY` keys; file paths
and dates are not compared), so a resumed benchmark can refuse to mix two models' results.

Files are written atomically (`ckd_ros.fileio`: temporary file + rename, permissions from the umask).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib
from typing import Any, Dict, List, Optional

from ckd_ros import __version__
from ckd_ros.errors import CKDError
from ckd_ros.hashing import file_sha256

FORMAT = "ckd_ros.provenance/1"
#: the keys whose values decide the boxes; two result sets may be merged only when all are equal
IDENTITY = ("ckd_ros_version", "model", "backend", "precision", "tracker", "thermal")
#: model keys compared (paths may move; the bytes may not change)
MODEL_IDENTITY = ("checkpoint_sha256", "onnx_sha256", "preset", "in_memory")


def model_record(checkpoint=None, onnx=None, preset: Optional[str] = None, in_memory: Optional[str] = None
                 ) -> Dict[str, Any]:
    """{checkpoint, checkpoint_sha256, onnx, onnx_sha256, preset} for the files given (sha256 of the
    bytes, `ckd_ros.hashing.file_sha256`); `in_memory` names a model that has no file."""
    record: Dict[str, Any] = {"preset": preset}
    for label, path in (("checkpoint", checkpoint), ("onnx", onnx)):
        if path is not None:
            record[label] = str(path)
            try:
                record[f"{label}_sha256"] = file_sha256(path)
            except OSError as exc:  # recorded as unknown: such a record never matches a hashed one
                record[f"{label}_sha256"] = None
                record[f"{label}_error"] = str(exc.strerror or exc)
    if in_memory is not None:
        record["in_memory"] = in_memory
    return record


def tracker_record(params, template_size: Optional[int] = None, search_size: Optional[int] = None
                   ) -> Dict[str, Any]:
    """TrackerParams as a dict, with the crop sizes actually used (from the backend's config)."""
    record = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params or {})
    if template_size is not None:
        record["template_size"] = int(template_size)
    if search_size is not None:
        record["search_size"] = int(search_size)
    return record


def make_provenance(model: Dict[str, Any], backend: str, precision: str, tracker: Dict[str, Any],
                    thermal: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    """A provenance record; `extra` (input, device, status, counts...) is stored but not compared."""
    record = {"format": FORMAT, "ckd_ros_version": __version__, "model": model, "backend": backend,
              "precision": precision, "tracker": tracker, "thermal": thermal,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    record.update(extra)
    return record


def _identity(record: Dict[str, Any], key: str) -> Any:
    value = record.get(key)
    if key == "model" and isinstance(value, dict):
        return {k: value.get(k) for k in MODEL_IDENTITY}
    return value


def differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """Human-readable differences between two records in the IDENTITY keys (empty: same origin)."""
    out = []
    for key in IDENTITY:
        a, b = _identity(old, key), _identity(new, key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    out.append(f"{key}.{sub} {_short(a.get(sub))} -> {_short(b.get(sub))}")
        else:
            out.append(f"{key} {_short(a)} -> {_short(b)}")
    return out


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) > 16:
        return value[:12] + "..."  # a sha256 or a long path: enough to tell them apart
    return json.dumps(value)


def write_atomic(path: pathlib.Path, text: str) -> None:
    """`ckd_ros.fileio.atomic_write_text` (readers see the old or the new file; umask permissions),
    with a file-system error as one CKDError line."""
    from ckd_ros.fileio import atomic_write_text

    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise CKDError(f"cannot write {path}: {exc.strerror or exc}; check the path and its permissions") from None


def write_provenance(path: pathlib.Path, record: Dict[str, Any]) -> None:
    write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_provenance(path: pathlib.Path) -> Optional[Dict[str, Any]]:
    """The record at `path`, None when there is none; CKDError when it cannot be read."""
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CKDError(f"provenance file {path} cannot be read ({exc}); use a new results folder or "
                       "--overwrite") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CKDError(f"{path} is not a ckd_ros provenance file; use a new results folder or --overwrite")
    return data
