"""Our ONNX operators as the kernels NeuSight measured, so the GPU cost model can price any ONNX model.

Mapping: MatMul / Gemm → gemm (B, M, N, K from the shapes); Conv → conv (square kernels; a non-square or
grouped Conv is priced as the dense conv of its larger kernel side — an upper bound); Add / Sub / Mul / Div /
Pow / Where → binary element-wise; Relu / Gelu / Erf / Tanh / Sigmoid / Sqrt / Exp / Neg / Cast / Transpose /
Reduce* / Pooling / BatchNormalization and every other operator that writes a tensor → unary element-wise over
its output (NeuSight has no measurement of these: they are priced as memory-bound copies); Softmax → softmax;
LayerNormalization → layernorm.  Reshape, Shape, Squeeze, Unsqueeze, Flatten, Identity, Constant, and Split and
Slice (views in eager PyTorch) launch nothing.

NeuSight's labels are PyTorch eager runs, so the graph is read as eager PyTorch runs it (:func:`eager_fusions`):
a linear layer's bias Add is part of its GEMM (``addmm``); the exporter's erf-GELU chain (Div, Erf, Add, Mul, Mul)
is one ``gelu`` kernel; a Transpose feeding only MatMuls is a strided operand, not a copy; integer tensors of a
few elements are shape arithmetic torch does on the host; a binary op with a scalar operand is its unary form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import onnx

from ..loader import ModelSource, load_model
from ..settings import DEFAULT_LIMITS, Limits
from ..shapes import TensorInfo, infer_shapes, static_batch
from ..strip import FLOAT_TYPES
from .kernels import Kernel

FREE_OPS = {"Reshape", "Shape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Constant", "ConstantOfShape", "Size",
            "Dropout", "Split", "Slice"}  # Split and Slice are views in eager PyTorch: the consumer reads strided
BINARY_OPS = {"Add": "add", "Sub": "add", "Mul": "mul", "Div": "div", "Pow": "pow", "Where": "add"}
UNMEASURED = "unary element-wise over the output (no public measurement)"


def _shape(shapes: dict[str, TensorInfo], name: str) -> tuple[int, ...]:
    info = shapes.get(name)
    return tuple(info.shape) if info is not None and info.known else ()


def _rows_of(shape: tuple[int, ...]) -> tuple[float, float]:
    if not shape:
        return 1.0, 1.0
    return float(math.prod(shape[:-1])) if len(shape) > 1 else 1.0, float(shape[-1])


_SHAPE_ARITHMETIC_ELEMENTS = 1024  # an integer or boolean tensor this small is host-side shape arithmetic in torch


@dataclass
class EagerFusions:
    """How eager PyTorch would run an exported graph: nodes folded into another node's kernel, nodes that launch
    nothing, and nodes whose kernel is another measured op (the last Mul of an erf-GELU runs as ``gelu``)."""

    absorbed: dict[str, str] = field(default_factory=dict)  # node → the node whose kernel it is part of
    free: set[str] = field(default_factory=set)
    runs_as: dict[str, str] = field(default_factory=dict)
    # nodes are named by node_name(): an exporter may leave node names empty, never output names

    def members(self) -> dict[str, list[str]]:
        """Host node → the nodes absorbed into its kernel."""
        out: dict[str, list[str]] = {}
        for name, host in self.absorbed.items():
            out.setdefault(host, []).append(name)
        return out


def node_name(node: onnx.NodeProto) -> str:
    """A node's name, or its first output's where the exporter left it unnamed (outputs are unique)."""
    return node.name or (node.output[0] if node.output else "")


def _numel(shapes: dict[str, TensorInfo], name: str) -> int | None:
    info = shapes.get(name)
    return info.numel if info is not None and info.known else None


def eager_fusions(model: onnx.ModelProto, shapes: dict[str, TensorInfo]) -> EagerFusions:
    """Which nodes of ``model`` eager PyTorch runs inside another kernel, or not at all (see the module doc)."""
    nodes = list(model.graph.node)
    producers = {out: node for node in nodes for out in node.output if out}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializers = {t.name: t for t in model.graph.initializer}
    graph_outputs = {v.name for v in model.graph.output}
    fusions = EagerFusions()

    def only_consumer(name: str) -> onnx.NodeProto | None:
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in graph_outputs else None

    for node in nodes:
        out = node.output[0] if node.output else ""
        info = shapes.get(out)
        if info is not None and info.known and info.elem_type not in FLOAT_TYPES \
                and info.numel <= _SHAPE_ARITHMETIC_ELEMENTS:
            fusions.free.add(node_name(node))
        if node.op_type == "Add" and len(node.input) == 2:  # a linear layer's bias: torch's addmm
            for a, b in (node.input, node.input[::-1]):
                gemm = producers.get(a)
                while b in producers and producers[b].op_type == "Identity":  # the exporter shares equal weights
                    b = producers[b].input[0]
                bias = initializers.get(b)
                if gemm is not None and gemm.op_type == "MatMul" and bias is not None and len(bias.dims) == 1 \
                        and only_consumer(a) is node:
                    fusions.absorbed[node_name(node)] = node_name(gemm)
                    break
        if node.op_type == "Erf":
            chain = [node]
            pre = producers.get(node.input[0])
            if pre is not None and pre.op_type in ("Div", "Mul") and only_consumer(pre.output[0]) is node:
                chain.insert(0, pre)
            nxt = only_consumer(out)
            while nxt is not None and nxt.op_type in ("Add", "Mul") and len(chain) < 5 \
                    and _numel(shapes, nxt.output[0]) == _numel(shapes, out):
                chain.append(nxt)
                nxt = only_consumer(nxt.output[0])
            if len(chain) >= 4:  # Div, Erf, Add, Mul (, Mul): one gelu kernel at the end of the chain
                host = chain[-1]
                fusions.runs_as[node_name(host)] = "gelu"
                for member in chain[:-1]:
                    fusions.absorbed[node_name(member)] = node_name(host)
    free_transposes: set[str] = set()
    for node in reversed(nodes):  # consumers come later in a topologically sorted graph
        if node.op_type == "Transpose" and node.output:
            users = consumers.get(node.output[0], [])
            if users and node.output[0] not in graph_outputs and all(
                    u.op_type == "MatMul" or node_name(u) in free_transposes for u in users):
                free_transposes.add(node_name(node))
    fusions.free |= free_transposes
    return fusions


def node_kernel(node: onnx.NodeProto, shapes: dict[str, TensorInfo], runs_as: str | None = None) -> Kernel | None:
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
    if runs_as is not None:
        return Kernel.rows("elementwise", runs_as, rows, width)
    if op in BINARY_OPS:
        operands = [_numel(shapes, name) for name in node.input[:2]]
        scalar = any(n is not None and n <= 1 for n in operands)  # torch's tensor-scalar form: one read, one write
        return Kernel.rows("elementwise", BINARY_OPS[op] + ("u" if scalar else ""), rows, width)
    return Kernel.rows("elementwise", {"Relu": "relu", "Tanh": "tanh", "Gelu": "gelu"}.get(op, "relu"), rows, width)


@dataclass(frozen=True)
class OnnxKernel:
    node: str
    op_type: str
    kernel: Kernel
    fused: tuple[str, ...] = ()  # the nodes eager PyTorch runs inside this one's kernel


def onnx_kernels(source: ModelSource, batch_size: int | None = None, dims: dict[str, int] | None = None,
                 limits: Limits | None = None) -> tuple[list[OnnxKernel], int]:
    """Every kernel the model launches when run as eager PyTorch runs it, and the batch used."""
    limits = limits or DEFAULT_LIMITS
    model = load_model(source, limits)
    batch = batch_size or static_batch(model) or 1
    shapes = infer_shapes(model, batch, dims, limits)
    fusions = eager_fusions(model, shapes)
    members = fusions.members()
    kernels = []
    for node in model.graph.node:
        name = node_name(node)
        if name in fusions.free or name in fusions.absorbed:
            continue
        kernel = node_kernel(node, shapes, fusions.runs_as.get(name))
        if kernel is not None:
            kernels.append(OnnxKernel(name, node.op_type, kernel, tuple(members.get(name, ()))))
    return kernels, batch
