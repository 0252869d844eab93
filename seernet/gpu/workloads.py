"""Whole models as kernels: NeuSight's torch.fx traces (validation) and our ONNX graphs (predictions).

A traced transformer has its embeddings, its first layer and its head; the model
runs ``num_layer`` such layers, so a model's time is ``num_layer ×`` the first
layer's kernels plus the rest — NeuSight's own composition.  Operators that only
rearrange metadata (view, permute, size, getitem) launch no kernel and cost nothing.
"""
from __future__ import annotations

import ast
import csv
import gzip
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .kernels import Kernel

_FIRST_LAYER = re.compile(r"\.(layer|layers|h|block|blocks)\.0[.'\"]")
_FREE = {"view", "permute", "size", "getitem", "getattr", "transpose", "reshape", "expand", "unsqueeze", "squeeze",
         "split", "chunk", "type_as", "to", "eq", "ones", "zeros", "arange", "dim", "flatten"}
_UNARY = {"gelu": "gelu", "relu": "relu", "tanh": "tanh", "dropout": "relu", "contiguous": "relu", "neg": "relu",
          "sqrt": "relu", "rsqrt": "relu", "exp": "relu", "masked_fill": "relu", "float": "relu", "cumsum": "relu"}
_BINARY = {"add": "add", "sub": "add", "mul": "mul", "truediv": "div", "div": "div", "pow": "pow", "iadd": "add",
           "matmul_scalar": "mul", "where": "add", "baddbmm_add": "add"}


@dataclass
class TracedOp:
    name: str
    kernel: Kernel | None  # None: no kernel launched
    in_first_layer: bool
    fw_ms: float
    bw_ms: float


@dataclass
class TracedWorkload:
    gpu: str
    model: str
    mode: str  # inf | train
    num_layer: int
    e2e_ms: float
    fw_ms: float
    ops: list[TracedOp] = field(default_factory=list)
    seq: int = 0
    batch: int = 0

    def compose(self, per_op_ms: np.ndarray) -> float:
        """``num_layer`` × the first layer's op times + the rest."""
        first = np.array([op.in_first_layer for op in self.ops])
        return float(self.num_layer * per_op_ms[first].sum() + per_op_ms[~first].sum())


def _shape_list(text: str) -> list[list[int]]:
    try:
        value = ast.literal_eval(text) if text else []
    except (ValueError, SyntaxError):
        return []
    return [list(v) for v in value if isinstance(v, (list, tuple))]


def _numel(shape) -> float:
    return float(math.prod(shape)) if shape else 1.0


_TARGET = re.compile(r"<(?:built-in )?(?:function|method) (\w+)")


def target_word(target: str) -> str:
    """The operator a traced node calls: ``<function softmax at 0x…>`` → ``softmax``,
    ``<built-in method addmm of type object at 0x…>`` → ``addmm``, ``<built-in function add>`` → ``add``,
    a method name (``view``) as it is."""
    match = _TARGET.match(target)
    word = match.group(1) if match else target.rsplit(".", 1)[-1]
    return re.sub(r"[^a-z_]", "", word.lower())


def kernel_of_fx(row: dict) -> Kernel | None:
    """The kernel a traced node launches, from its op, target and shapes; None for metadata-only nodes."""
    op, target, meta = row["op"], row["target"], row.get("meta", "")
    inputs = _shape_list(row.get("input_shapes", ""))
    out = _shape_list(f"[{row.get('output_shape', '')}]")
    out = out[0] if out else []
    word = target_word(target)
    if op in ("placeholder", "output", "get_attr") or not out:  # get_attr reads a parameter: no kernel
        return None
    if op == "call_module":
        module = meta.rsplit("<class '", 1)[-1].split("'", 1)[0].rsplit(".", 1)[-1] if "<class '" in meta else ""
        if module in ("Linear", "Conv1D", "NonDynamicallyQuantizableLinear") and inputs:
            k = inputs[0][-1]
            return Kernel.gemm(1, _numel(out[:-1]), out[-1], k, "linear")
        if module == "LayerNorm":
            return Kernel.rows("layernorm", "ln", _numel(out[:-1]), out[-1])
        if module in ("Embedding",):
            return Kernel.rows("elementwise", "relu", _numel(out[:-1]), out[-1])
        if module in ("Dropout", "Identity"):
            return None
        if module in ("GELUActivation", "NewGELUActivation", "GELU", "ReLU", "Tanh"):
            return Kernel.rows("elementwise", "gelu" if "GELU" in module else "relu", _numel(out[:-1]), out[-1])
        return Kernel.rows("elementwise", "relu", _numel(out[:-1]), out[-1] if out else 1)
    if word in _FREE or word.startswith("get"):
        return None
    if word in ("addmm", "baddbmm") and len(inputs) >= 3:  # bias, a, b (HF's Conv1D is an addmm)
        inputs = inputs[1:]
        word = "matmul"
    if word in ("matmul", "bmm", "mm") and len(inputs) >= 2 and len(inputs[0]) >= 2 and len(inputs[1]) >= 2:
        a, b = inputs[0], inputs[1]
        return Kernel.gemm(_numel(out[:-2]) if len(out) > 2 else 1, a[-2], b[-1], a[-1])
    if word == "softmax":
        return Kernel.rows("softmax", "softmax", _numel(out[:-1]), out[-1])
    if word in _BINARY and sum(_numel(s) > 1 for s in inputs) >= 2:
        return Kernel.rows("elementwise", _BINARY[word], _numel(out[:-1]), out[-1] if out else 1)
    if word in _BINARY or word in _UNARY:
        return Kernel.rows("elementwise", _UNARY.get(word, _BINARY.get(word, "relu") + "u"), _numel(out[:-1]),
                           out[-1] if out else 1)
    return Kernel.rows("elementwise", "relu", _numel(out[:-1]), out[-1] if out else 1) if _numel(out) > 1 else None


def load_traced(root: str | Path) -> list[TracedWorkload]:
    """Every labelled run of ``labels/<GPU>/<model>-<inf|train>-<seq>-<batch>`` with its per-operator trace."""
    workloads = []
    for summary in sorted(Path(root, "labels").glob("*/*.json.gz")):
        stem = summary.name.removesuffix(".json.gz")
        trace = summary.with_name(stem + ".csv.gz")
        if "fusion" in stem or not trace.exists():
            continue
        info = json.loads(gzip.open(summary).read())
        parts = stem.split("-")
        if len(parts) != 4:
            continue  # parallel runs (dp4, tp4, pp4) are not single-GPU workloads
        model, mode, seq, batch = parts[0], parts[1], int(parts[2]), int(parts[3])
        with gzip.open(trace, "rt", newline="") as f:
            rows = list(csv.DictReader(f))
        ops = []
        for row in rows:
            kernel = kernel_of_fx(row)
            where = f"{row.get('target', '')} {row.get('meta', '')}"
            ops.append(TracedOp(row.get("Name", ""), kernel, bool(_FIRST_LAYER.search(where)),
                                float(row.get("fw_latency") or row.get("latency") or 0),
                                float(row.get("bw_latency") or 0)))
        workloads.append(TracedWorkload(summary.parent.name, model, mode, int(info["num_layer"]),
                                        float(info["e2e_latency"]), float(info["fw_latency"]), ops, seq, batch))
    return workloads
