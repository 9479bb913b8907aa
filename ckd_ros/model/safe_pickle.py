"""A restricted unpickler for checkpoints from the tracking ecosystem (the authors' `.pth.tar` files,
pytracking/OSTrack-style trainers).

The released files pickle training objects (`lib.train.admin.settings.Settings`, `AverageMeter`...)
next to the weights, and trainers store NumPy scalars and arrays in their statistics, so
`torch.load(weights_only=True)` may refuse them while `weights_only=False` would execute whatever a
downloaded file asks for. This unpickler resolves only an allow-list of data reconstructors: torch's
tensor rebuild helpers, plain containers, and NumPy's data-only reconstructors (`scalar`, `dtype`,
`ndarray`, `_reconstruct`, the `numpy.dtypes.*DType` classes; the same set torch's own weights-only
loader accepts). Classes of the authors' training package (`lib.*`) become inert placeholders; every
other global is refused with `RefusedGlobal`, so a malicious file cannot run code.
"""
from __future__ import annotations

import codecs
import collections
import pickle
from typing import Any, Dict, Tuple

import numpy as np
import torch

# Globals a weights file legitimately needs (torch.load resolves `*Storage` names itself).
_ALLOWED: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    # protocol 2 (torch.save's default) stores bytes inside NumPy objects as latin-1 text + encode
    ("_codecs", "encode"): codecs.encode,
}
for _dtype in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"):
    _ALLOWED[("torch", _dtype)] = getattr(torch, _dtype)


def _numpy_multiarray():
    try:
        from numpy._core import multiarray  # NumPy >= 2
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    return multiarray


# NumPy's reconstructors: they rebuild data from bytes and a dtype, never call anything else. Files
# written under NumPy 1.x name `numpy.core.*`, under 2.x `numpy._core.*`: both map to the installed one.
_MULTIARRAY = _numpy_multiarray()
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "scalar")] = _MULTIARRAY.scalar
    _ALLOWED[(_module, "_reconstruct")] = _MULTIARRAY._reconstruct
_ALLOWED[("numpy", "dtype")] = np.dtype
_ALLOWED[("numpy", "ndarray")] = np.ndarray


def _numpy_dtype_class(module: str, name: str):
    """`numpy.dtypes.Float64DType` and its siblings (how NumPy >= 1.25 pickles dtype classes), else None."""
    if module != "numpy.dtypes" or not name.endswith("DType"):
        return None
    dtypes = getattr(np, "dtypes", None)
    cls = getattr(dtypes, name, None) if dtypes is not None else None
    return cls if isinstance(cls, type) and issubclass(cls, np.dtype) else None


# Modules of the authors' training code whose objects ride along in the checkpoint.
_PLACEHOLDER_PREFIXES = ("lib.", "easydict")


class Placeholder:
    """Stands in for a training-code object; keeps its state, runs no code."""

    def __init__(self, *args, **kwargs):
        self._args = args

    def __setstate__(self, state):
        self._state = state


class RefusedGlobal(pickle.UnpicklingError):
    """The file names a global that could run code; the message names it and says what to do."""


class Unpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` resolves only the allow-list above (see module doc)."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        dtype_class = _numpy_dtype_class(module, name)
        if dtype_class is not None:
            return dtype_class
        if module.startswith(_PLACEHOLDER_PREFIXES) or module == "lib":
            return type(name, (Placeholder,), {"__module__": "ckd_ros.placeholder." + module})
        raise RefusedGlobal(
            f"refusing to load '{module}.{name}': the file asks to import code that a weights file never "
            "needs (unpickling it could run arbitrary commands). If the file comes from a source you trust, "
            "re-save only its weights with the code that wrote it (ideally in a sandbox): "
            "torch.save({'net': model.state_dict()}, 'weights.pth'), then use that file")


def load(*args, **kwargs):
    """`pickle.load` through the restricted `Unpickler`."""
    return Unpickler(*args, **kwargs).load()
