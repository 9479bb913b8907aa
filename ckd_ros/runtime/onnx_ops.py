"""Does a TensorRT version's ONNX parser accept a graph? Checked without a GPU, from the parser's
own operator tables (`docs/operators.md` of onnx/onnx-tensorrt per release; the project keeps
copies for 8.5, 8.6 and 10.1 in ../shared/data/tensorrt_onnx_ops/).

For every node of the main graph: the operator must be "Y" in the table, and the restrictions the
table states must hold where they can be checked statically:
- "`name` must be an initializer" / "must be a constant tensor": that input is an initializer or
  the output of a Constant node (inputs named by the operator's ONNX schema; attributes in older
  opsets are constant by construction);
- "`x_zero_point` must be zero" / "`y_zero_point` must be 0": a constant all-zero zero point;
- "`sorted` must be 1"; "`K` input must be less than N"; "Only the first output `Y` is supported";
- "`a`, `b` ... attributes are unsupported" (e.g. Constant's sparse_value);
- Quantize/Dequantize integer types: the zero point's element type must be in the row's types
  (TensorRT 8.5/8.6: INT8 only, no UINT8);
- the graph's opset within the range the table's header states ("up to Opset 17", "opset 9 to 20").
Restriction texts this checker does not understand are reported by `unchecked_restrictions` so a
test can prove none of them applies to the graphs it checks.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Dict, List, Optional, Tuple

from ckd_ros.errors import CheckpointError

TABLE_FILES = {(8, 5): "operators-8.5-GA.md", (8, 6): "operators-8.6-GA.md", (10, 1): "operators-10.1-GA.md"}
_ONNX_INT = {2: "UINT8", 3: "INT8", 22: "INT4", 21: "UINT4", 17: "FP8", 18: "FP8", 19: "FP8", 20: "FP8"}


@dataclasses.dataclass(frozen=True)
class OpRow:
    op: str
    supported: bool
    types: Tuple[str, ...]
    restrictions: str


@dataclasses.dataclass(frozen=True)
class OpTable:
    release: str
    min_opset: int
    max_opset: int
    rows: Dict[str, OpRow]


def parse_operator_table(text: str, release: str = "") -> OpTable:
    """Rows `| Operator | Supported | Types | Restrictions |` and the opset range of the header."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[1] not in ("Y", "N"):
            continue
        types = tuple(t.strip() for t in cells[2].split(",") if t.strip()) if len(cells) > 2 else ()
        rows[cells[0]] = OpRow(cells[0], cells[1] == "Y", types, cells[3] if len(cells) > 3 else "")
    lo, hi = 1, 99
    m = re.search(r"up to Opset (\d+)", text, re.IGNORECASE)
    if m:
        hi = int(m.group(1))
    m = re.search(r"range of opset (\d+) to opset (\d+)", text, re.IGNORECASE)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
    if not rows:
        raise CheckpointError(f"no operator rows in the TensorRT operator table {release or '(text)'}")
    return OpTable(release, lo, hi, rows)


def table_file_for(trt_version: str) -> str:
    """The table file for a TensorRT version: 8.5 -> 8.5, 8.6..9.x -> 8.6, 10.x -> 10.1."""
    from ckd_ros.model.onnx_meta import trt_version_tuple

    v = trt_version_tuple(trt_version)
    best = max((k for k in TABLE_FILES if k <= v), default=min(TABLE_FILES))
    return TABLE_FILES[best]


def load_table(tables_dir, trt_version: str) -> OpTable:
    path = pathlib.Path(tables_dir) / table_file_for(trt_version)
    return parse_operator_table(path.read_text(encoding="utf-8"), path.stem.replace("operators-", ""))


# ---- restriction checks -------------------------------------------------------------------------
_CONST_INPUT = re.compile(r"`(\w+)`(?: input)? must be (?:an initializer|a constant tensor)")
_ZERO = re.compile(r"`(\w+_zero_point)` must be (?:0|zero)")
_ATTR_VALUE = re.compile(r"`(\w+)` must be (\d+)")
_LESS = re.compile(r"`(\w+)` input must be less than (\d+)")
_FIRST_OUTPUT = re.compile(r"Only the first output `\w+` is supported")
_BAD_ATTRS = re.compile(r"((?:`\w+`,?\s*(?:and\s*)?)+) attributes are unsupported")
_UNDERSTOOD = (_CONST_INPUT, _ZERO, _ATTR_VALUE, _LESS, _FIRST_OUTPUT, _BAD_ATTRS)


def unchecked_restrictions(row: OpRow) -> List[str]:
    """Sentences of a row's restrictions that none of the checks above understands."""
    parts = [p.strip() for p in re.split(r"(?<=\.)\s+|\.$", row.restrictions) if p.strip(" .")]
    return [p for p in parts if not any(rx.search(p) for rx in _UNDERSTOOD)]


class _Graph:
    def __init__(self, proto):
        from onnx import numpy_helper

        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        self.consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
        self.const_dtypes = {i.name: i.data_type for i in proto.graph.initializer}
        for node in proto.graph.node:
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        self.consts[node.output[0]] = numpy_helper.to_array(a.t)
                        self.const_dtypes[node.output[0]] = a.t.data_type
        self.used = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}

    def input_index(self, node, name: str) -> Optional[int]:
        import onnx.defs

        try:
            schema = onnx.defs.get_schema(node.op_type, self.opset or 17, node.domain or "")
        except Exception:  # unknown operator / domain
            return None
        names = [i.name for i in schema.inputs]
        return names.index(name) if name in names else None


def _check_node(g: _Graph, node, row: OpRow, quantized_types: Tuple[str, ...]) -> List[str]:
    import numpy as np

    where = f"{node.op_type} {node.name or '(unnamed)'}"
    problems = []
    attrs = {a.name: a for a in node.attribute}
    text = row.restrictions
    for name in _CONST_INPUT.findall(text):
        idx = g.input_index(node, name)
        if idx is not None and idx < len(node.input) and node.input[idx] and node.input[idx] not in g.consts:
            problems.append(f"{where}: `{name}` must be an initializer/constant, it is computed")
    for name in _ZERO.findall(text):
        idx = g.input_index(node, name)
        if idx is None or idx >= len(node.input) or not node.input[idx]:
            continue
        value = g.consts.get(node.input[idx])
        if value is None or np.any(np.asarray(value) != 0):
            problems.append(f"{where}: `{name}` must be a constant zero")
        # x_zero_point types the quantized input (the row's types); y_zero_point the quantized
        # output, whose allowed types are DequantizeLinear's inputs
        allowed = row.types if name.startswith("x_") else quantized_types
        dtype = _ONNX_INT.get(g.const_dtypes.get(node.input[idx]))
        if dtype and allowed and dtype not in allowed:
            problems.append(f"{where}: {dtype} is not a supported quantized type ({', '.join(allowed)})")
    for name, value in _ATTR_VALUE.findall(text):
        if name in attrs and name not in _ZERO.findall(text):
            import onnx.helper

            if int(onnx.helper.get_attribute_value(attrs[name])) != int(value):
                problems.append(f"{where}: attribute `{name}` must be {value}")
    for name, limit in _LESS.findall(text):
        idx = g.input_index(node, name)
        if idx is not None and idx < len(node.input) and node.input[idx] in g.consts:
            if int(np.asarray(g.consts[node.input[idx]]).reshape(-1)[0]) >= int(limit):
                problems.append(f"{where}: `{name}` must be less than {limit}")
    if _FIRST_OUTPUT.search(text) and any(o and o in g.used for o in node.output[1:]):
        problems.append(f"{where}: only its first output is supported, a later one is used")
    m = _BAD_ATTRS.search(text)
    if m:
        bad = set(re.findall(r"`(\w+)`", m.group(1))) & set(attrs)
        if bad:
            problems.append(f"{where}: attributes {sorted(bad)} are unsupported")
    return problems


def check_onnx_ops(model, table: OpTable) -> List[str]:
    """Problems (empty: the parser of `table` accepts every node) of an ONNX ModelProto or file."""
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model), load_external_data=False)
    g = _Graph(proto)
    dq = table.rows.get("DequantizeLinear")
    quantized = dq.types if dq is not None else ()
    problems = []
    if g.opset is not None and not table.min_opset <= g.opset <= table.max_opset:
        problems.append(f"opset {g.opset} outside TensorRT {table.release}'s {table.min_opset}-{table.max_opset}")
    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.op_type} {node.name}: custom domain {node.domain} (needs a plugin)")
            continue
        row = table.rows.get(node.op_type)
        if row is None or not row.supported:
            problems.append(f"{node.op_type} {node.name}: not supported by TensorRT {table.release}'s parser")
            continue
        problems += _check_node(g, node, row, quantized)
    return problems
