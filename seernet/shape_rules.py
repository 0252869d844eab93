"""Output shapes of the commonest operators, computed as onnx's shape inference computes them.

Why: the fast lane (``seernet.fast_graph``) asks onnx to infer an operator it has not seen before, alone
(~40-100 µs with the protobuf round trip); a model of new shapes (a space with free widths, a network at a
batch not asked before) misses on most of its operators.  These rules answer the cases NAS models are made
of in a few microseconds.  Each rule covers its operator's plain form only and returns None for anything
else (``auto_pad``, ``ceil_mode`` …), which onnx then infers; ``tests/seernet/test_shape_rules.py`` checks
every rule against onnx's inference, and the corpus tests check whole graphs.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

Shape = tuple[int, ...]
Typed = tuple[Shape, int]  # (shape, onnx element type)

_SAME = ("Relu", "Sigmoid", "Tanh", "Clip", "Identity", "Erf", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal",
         "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "Mish", "Softmax",
         "LogSoftmax", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "PRelu", "Gelu", "LayerNormalization",
         "BatchNormalization", "InstanceNormalization", "GroupNormalization", "Dropout")
_BROADCAST = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Where")


def output_shapes(op_type: str, inputs: Sequence[Typed | None], attrs: dict, outputs: int) -> list[Typed] | None:
    """The outputs' (shape, type) of ``op_type`` (standard domain) on ``inputs``, or None where no rule
    covers the case.  ``attrs``: decoded attributes; ``outputs``: how many outputs the node names."""
    rule = _RULES.get(op_type)
    if rule is None or not inputs or not _typed_as_onnx_requires(op_type, inputs):
        return None
    try:
        out = rule(list(inputs), attrs)
    except (IndexError, KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if out is None or len(out) < outputs:
        return None
    return out[:outputs]


# onnx refuses most of these operators on other element types (strict inference); those cases go to it
_FLOATS = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
_BOOL = 9
_ALL_SAME_TYPE = {*_BROADCAST, "Conv", "Gemm", "MatMul", "Concat"} - {"Where"}


def _typed_as_onnx_requires(op_type: str, inputs: Sequence[Typed | None]) -> bool:
    """The element types a rule may answer for: float data; one type across inputs where onnx asks one
    (Where: a boolean condition, then one type)."""
    if op_type == "Where":
        return (len(inputs) == 3 and None not in inputs and inputs[0][1] == _BOOL
                and inputs[1][1] in _FLOATS and inputs[2][1] == inputs[1][1])
    if inputs[0] is None or inputs[0][1] not in _FLOATS:
        return False
    return op_type not in _ALL_SAME_TYPE or all(i is None or i[1] == inputs[0][1] for i in inputs)


def _same(inputs: list, attrs: dict) -> list[Typed] | None:
    return [inputs[0]]


def _broadcast(inputs: list, attrs: dict) -> list[Typed] | None:
    if any(i is None for i in inputs) or len(inputs) < 2:
        return None
    shape = np.broadcast_shapes(*(i[0] for i in inputs))  # onnx broadcasts as numpy does (ValueError: no rule)
    elem = inputs[1][1] if len(inputs) == 3 else inputs[0][1]  # Where(condition, x, y): x's type
    return [(tuple(int(d) for d in shape), elem)]


def _spatial(inputs: list, attrs: dict, kernel: Sequence[int], channels: int) -> list[Typed] | None:
    """Conv / pooling output: explicit pads only (``auto_pad`` NOTSET), floor mode only."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or attrs.get("ceil_mode", 0):
        return None
    shape, elem = inputs[0]
    spatial = shape[2:]
    if len(kernel) != len(spatial):
        return None
    strides = list(attrs.get("strides") or [1] * len(spatial))
    dilations = list(attrs.get("dilations") or [1] * len(spatial))
    pads = list(attrs.get("pads") or [0] * (2 * len(spatial)))
    out = []
    for k, (size, kern, stride, dilation) in enumerate(zip(spatial, kernel, strides, dilations)):
        span = size + pads[k] + pads[k + len(spatial)] - dilation * (kern - 1) - 1
        if span < 0 or stride < 1:
            return None
        out.append(span // stride + 1)
    return [((shape[0], channels, *out), elem)]


def _conv(inputs: list, attrs: dict) -> list[Typed] | None:
    if len(inputs) < 2 or inputs[1] is None:
        return None
    weight = inputs[1][0]
    kernel = list(attrs.get("kernel_shape") or weight[2:])
    if weight[1] * int(attrs.get("group", 1)) != inputs[0][0][1]:
        return None
    return _spatial(inputs, attrs, kernel, weight[0])


def _pool(inputs: list, attrs: dict) -> list[Typed] | None:
    if "kernel_shape" not in attrs:
        return None
    return _spatial(inputs, attrs, list(attrs["kernel_shape"]), inputs[0][0][1])


def _global_pool(inputs: list, attrs: dict) -> list[Typed] | None:
    shape, elem = inputs[0]
    return [((*shape[:2], *([1] * (len(shape) - 2))), elem)] if len(shape) >= 3 else None


def _gemm(inputs: list, attrs: dict) -> list[Typed] | None:
    if len(inputs) < 2 or inputs[1] is None or len(inputs[0][0]) != 2 or len(inputs[1][0]) != 2:
        return None
    a, b = inputs[0][0], inputs[1][0]
    m, k = (a[1], a[0]) if attrs.get("transA", 0) else a
    k2, n = (b[1], b[0]) if attrs.get("transB", 0) else b
    return [((m, n), inputs[0][1])] if k == k2 else None


def _matmul(inputs: list, attrs: dict) -> list[Typed] | None:
    if len(inputs) < 2 or inputs[1] is None:
        return None
    a, b = inputs[0][0], inputs[1][0]
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        return None
    batch = np.broadcast_shapes(a[:-2], b[:-2])
    return [((*(int(d) for d in batch), a[-2], b[-1]), inputs[0][1])]


def _flatten(inputs: list, attrs: dict) -> list[Typed] | None:
    shape, elem = inputs[0]
    axis = int(attrs.get("axis", 1))
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis <= len(shape):
        return None
    return [((math.prod(shape[:axis]), math.prod(shape[axis:])), elem)]


def _concat(inputs: list, attrs: dict) -> list[Typed] | None:
    if any(i is None for i in inputs) or "axis" not in attrs:
        return None
    rank = len(inputs[0][0])
    axis = int(attrs["axis"]) + (rank if int(attrs["axis"]) < 0 else 0)
    if not 0 <= axis < rank or any(len(s) != rank for s, _ in inputs):
        return None
    if any(s[:axis] + s[axis + 1:] != inputs[0][0][:axis] + inputs[0][0][axis + 1:] for s, _ in inputs):
        return None
    shape = list(inputs[0][0])
    shape[axis] = sum(s[axis] for s, _ in inputs)
    return [(tuple(shape), inputs[0][1])]


def _transpose(inputs: list, attrs: dict) -> list[Typed] | None:
    shape, elem = inputs[0]
    perm = list(attrs.get("perm") or reversed(range(len(shape))))
    if sorted(perm) != list(range(len(shape))):
        return None
    return [(tuple(shape[p] for p in perm), elem)]


_RULES: dict[str, Callable[[list, dict], list[Typed] | None]] = {
    **{op: _same for op in _SAME},
    **{op: _broadcast for op in _BROADCAST},
    "Conv": _conv, "MaxPool": _pool, "AveragePool": _pool, "GlobalAveragePool": _global_pool,
    "GlobalMaxPool": _global_pool, "Gemm": _gemm, "MatMul": _matmul, "Flatten": _flatten, "Concat": _concat,
    "Transpose": _transpose,
}
