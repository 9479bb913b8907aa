"""A restricted unpickler for the authors' `.pth.tar` checkpoints.

The released files pickle training objects (`lib.train.admin.settings.Settings`, `AverageMeter`...)
next to the weights, so `torch.load(weights_only=True)` refuses them and `weights_only=False` would
execute whatever a downloaded file asks for. This unpickler resolves only an allow-list of tensor
rebuild helpers and plain containers; classes of the authors' training package (`lib.*`) become
inert placeholders; every other global is refused, so a malicious file cannot run code.
"""
from __future__ import annotations

import collections
import pickle

import torch

# Globals a weights file legitimately needs (torch.load resolves `*Storage` names itself).
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
}
for _dtype in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"):
    _ALLOWED[("torch", _dtype)] = getattr(torch, _dtype)

# Modules of the authors' training code whose objects ride along in the checkpoint.
_PLACEHOLDER_PREFIXES = ("lib.", "easydict")


class Placeholder:
    """Stands in for a training-code object; keeps its state, runs no code."""

    def __init__(self, *args, **kwargs):
        self._args = args

    def __setstate__(self, state):
        self._state = state


class RefusedGlobal(pickle.UnpicklingError):
    pass


class Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module.startswith(_PLACEHOLDER_PREFIXES) or module == "lib":
            return type(name, (Placeholder,), {"__module__": "ckd_ros.placeholder." + module})
        raise RefusedGlobal(
            f"refusing to load '{module}.{name}': the file asks to import code that a weights file never "
            "needs (it could run arbitrary commands). Only load checkpoints from sources you trust; "
            "if this one is genuine, convert it once on a sandboxed machine with `ckd convert`.")


def load(*args, **kwargs):
    return Unpickler(*args, **kwargs).load()
