"""Our ONNX operators as the kernels NeuSight measured, so the GPU cost model can price any ONNX model.

Mapping: MatMul / Gemm → gemm (B, M, N, K from the shapes); Conv → conv (square kernels; a non-square or
grouped Conv is priced as the dense conv of its larger kernel side — an upper bound); Add / Sub / Mul / Div /
Pow / Where → binary element-wise; Relu / Gelu / Erf / Tanh / Sigmoid / Sqrt / Exp / Neg / Cast / Transpose /
Reduce* / Pooling / BatchNormalization and every other operator that writes a tensor → unary element-wise over
its output (NeuSight has no measurement of these: they are priced as memory-bound copies); Softmax → softmax;
LayerNormalization → layernorm.  Reshape, Shape, Squeeze, Unsqueeze, Flatten, Identity, Constant launch nothing.
"""
from __future__ import annotations

import math

import onnx

from ..loader import ModelSource, load_model
from ..settings import DEFAULT_LIMITS, Limits
from ..shapes import TensorInfo, infer_shapes, static_batch
from .kernels import Kernel

FREE_OPS = {"Reshape", "Shape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Constant", "ConstantOfShape", "Size",
            "Dropout"}
BINARY_OPS = {"Add": "add", "Sub": "add", "Mul": "mul", "Div": "div", "Pow": "pow", "Where": "add"}
UNMEASURED = "unary element-wise over the output (no public measurement)"


def _shape(shapes: dict[str, TensorInfo], name: str) -> tuple[int, ...]:
    info = shapes.get(name)
    return tuple(info.shape) if info is not None and info.known else ()


def _rows_of(shape: tuple[int, ...]) -> tuple[float, float]:
    if not shape:
        return 1.0, 1.0
    return float(math.prod(shape[:-1])) if len(shape) > 1 else 1.0, float(shape[-1])


def node_kernel(node: onnx.NodeProto, shapes: dict[str, TensorInfo]) -> Kernel | None:
    op = node.op_type
    out = _shape(shapes, node.output[0]) if node.output else ()
    if op in FREE_OPS or not out:
        return None
    if op in ("MatMul", "Gemm") and len(node.input) >= 2:
        a, b = _shape(shapes, node.input[0]), _shape(shapes, node.input[1])
        if len(a) >= 2 and len(b) >= 2:
            trans_a = any(x.name == "transA" and x.i for x in node.attribute)
            trans_b = any(x.name == "transB" and x.i for x in node.attribute)
            m, k = (a[-1], a[-2]) if trans_a else (a[-2], a[-1])
            n = b[-2] if trans_b else b[-1]
            if len(b) == 2:  # a linear layer: every leading dim of the input is rows of one GEMM, as torch runs it
                return Kernel.gemm(1, math.prod(a[:-1]), n, k, "linear")
            batch = math.prod(out[:-2]) if len(out) > 2 else 1
            return Kernel.gemm(batch, m, n, k, "bmm")
    if op == "Conv" and len(node.input) >= 2:
        x, w = _shape(shapes, node.input[0]), _shape(shapes, node.input[1])
        if len(x) == 4 and len(w) == 4:
            stride = next((max(a.ints) for a in node.attribute if a.name == "strides" and a.ints), 1)
            pad = next((max(a.ints) for a in node.attribute if a.name == "pads" and a.ints), 0)
            return Kernel.conv(x[0], x[1], w[0], max(w[2], w[3]), max(x[2], x[3]), stride, pad)
    rows, width = _rows_of(out)
    if op == "Softmax":
        return Kernel.rows("softmax", "softmax", rows, width)
    if op == "LayerNormalization":
        return Kernel.rows("layernorm", "ln", rows, width)
    if op in BINARY_OPS:
        return Kernel.rows("elementwise", BINARY_OPS[op], rows, width)
    return Kernel.rows("elementwise", {"Relu": "relu", "Tanh": "tanh", "Gelu": "gelu"}.get(op, "relu"), rows, width)


def onnx_kernels(source: ModelSource, batch_size: int | None = None, dims: dict[str, int] | None = None,
                 limits: Limits | None = None) -> tuple[list[tuple[str, str, Kernel]], int]:
    """(node name, op type, kernel) for every operator that launches one, and the batch used."""
    limits = limits or DEFAULT_LIMITS
    model = load_model(source, limits)
    batch = batch_size or static_batch(model) or 1
    shapes = infer_shapes(model, batch, dims, limits)
    kernels = []
    for node in model.graph.node:
        kernel = node_kernel(node, shapes)
        if kernel is not None:
            kernels.append((node.name, node.op_type, kernel))
    return kernels, batch
