"""What one operator costs: FLOPs, MACs, parameters, bytes moved, and its structural attributes.

Conventions (stated, since counters differ):

============================  ===========================================  ==================
operator                      MACs                                         FLOPs
============================  ===========================================  ==================
Conv (grouped/dw/dilated)     out_numel · C_in/groups · prod(kernel)       2·MACs (+ out if bias)
ConvTranspose                 in_numel · C_out/groups · prod(kernel)       2·MACs (+ out if bias)
Gemm                          M · N · K                                    2·MACs (+ M·N if C)
MatMul (batched, broadcast)   out_numel · K                                2·MACs
BatchNormalization            out_numel (folded scale + shift)             2·out_numel
Layer/Instance/GroupNorm      out_numel (affine)                           8·out_numel
Softmax / LogSoftmax          0                                            5·out_numel
Max/AveragePool               0                                            out_numel · prod(kernel)
GlobalAverage/MaxPool         0                                            in_numel
Reduce*                       0                                            in_numel
Resize                        linear: out_numel·2^d, cubic: out·4^d        2·MACs; nearest 0
element-wise / activations    0                                            out_numel · cost(op)
data movement, shape ops      0                                            0 (bytes still count)
============================  ===========================================  ==================

``d`` is the number of axes a Resize changes.  Parameters are the float
initializers an operator consumes, each counted once in the model, excluding
BatchNorm running mean/variance (buffers, as torchvision counts) and scalars.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import onnx

from .op_vocab import category_of
from .shapes import TensorInfo, require
from .strip import FLOAT_TYPES

_ELEMENTWISE_COST = {"Sigmoid": 4, "Tanh": 4, "Gelu": 8, "Erf": 4, "HardSwish": 3, "HardSigmoid": 2, "Mish": 6,
                     "Softplus": 3, "Elu": 3, "Selu": 3, "Celu": 3, "Swish": 5, "Pow": 1, "Exp": 1, "Log": 1}


@dataclass
class NodeCost:
    flops: float = 0.0
    macs: float = 0.0
    params: float = 0.0
    bytes_read_act: float = 0.0
    bytes_read_weight: float = 0.0
    bytes_written: float = 0.0
    kernel: tuple[int, int] = (0, 0)
    stride: tuple[int, int] = (0, 0)
    pad: int = 0
    dilation: int = 0
    groups: int = 0
    in_channels: int = 0
    out_channels: int = 0
    in_spatial: int = 0
    out_spatial: int = 0
    extras: dict = field(default_factory=dict)

    @property
    def memory_bytes(self) -> float:
        return self.bytes_read_act + self.bytes_read_weight + self.bytes_written


class Op:
    """An operator described without a protobuf (what a space that knows its own graph emits): the fields of
    ``onnx.NodeProto`` that costs and features read, with attributes already decoded."""

    __slots__ = ("op_type", "input", "output", "name", "domain", "attrs", "attrs_key")

    def __init__(self, op_type: str, inputs: list[str], outputs: list[str], name: str = "",
                 attrs: dict | None = None, domain: str = "", attrs_key: tuple | None = None) -> None:
        self.op_type, self.input, self.output, self.name = op_type, inputs, outputs, name
        self.domain, self.attrs = domain, attrs or {}
        self.attrs_key = attrs_key if attrs_key is not None else attrs_key_of(self.attrs)


def attrs_key_of(attrs: dict) -> tuple:
    """Decoded attributes as a hashable key (an emitter that reuses one attribute dict computes it once)."""
    return tuple(sorted((k, _frozen(v)) for k, v in attrs.items()))


Operator = onnx.NodeProto | Op


def attributes(node: Operator) -> dict:
    if isinstance(node, Op):
        return node.attrs
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute} if len(node.attribute) else {}


def _frozen(value: object) -> object:
    """An attribute value as a hashable key part (tensors and sub-graphs by their serialised bytes)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if hasattr(value, "SerializeToString"):
        return (type(value).__name__, value.SerializeToString())
    return value


def signature(node: Operator, shapes: dict[str, TensorInfo], weights: set[str]) -> tuple:
    """What an operator's cost depends on, as a hashable key: type, attributes, inputs (shape, type, weight or
    not), outputs.  Names do not enter it (parameters, which do, are counted apart: :func:`param_inputs`)."""
    if isinstance(node, Op):
        attrs_key: tuple = node.attrs_key
    else:  # the serialised attributes: one C++ call each, not a Python decode
        attrs_key = tuple(a.SerializeToString() for a in node.attribute)
    ins = tuple((None if not name else _shape_key(shapes, name, node), bool(name) and name in weights)
                for name in node.input)
    outs = tuple(None if not name else _shape_key(shapes, name, node) for name in node.output)
    return (node.op_type, node.domain, attrs_key, ins, outs)


def _shape_key(shapes: dict[str, TensorInfo], name: str, node: Operator) -> tuple:
    info = require(shapes, name, node)
    return info.shape, info.elem_type


def parameter_elements(info: TensorInfo | None) -> int:
    """A weight's elements if it is a parameter (a float tensor, not a scalar), else 0."""
    return info.numel if info is not None and info.numel > 1 and info.elem_type in FLOAT_TYPES else 0


def param_inputs(node: Operator, shapes: dict[str, TensorInfo], weights: set[str]) -> list[tuple[int, int]]:
    """(input index, elements) of the inputs that are parameters unless counted already: float initializers,
    not scalars, not BatchNorm's running statistics (see the module docstring)."""
    skip = {3, 4} if node.op_type == "BatchNormalization" else set()
    out = []
    for index, name in enumerate(node.input):
        if not name or name not in weights or index in skip:
            continue
        numel = parameter_elements(shapes.get(name))
        if numel:
            out.append((index, numel))
    return out


def _pair(values: list[int] | tuple[int, ...] | None, default: int = 1) -> tuple[int, int]:
    values = list(values or [])
    if not values:
        return (default, default)
    return (int(values[0]), int(values[-1]))


def _channels_spatial(info: TensorInfo) -> tuple[int, int]:
    """(channels, spatial) of a tensor: NC… for rank ≥ 3 images, N·L·C for sequences, N·C for vectors."""
    shape = info.shape
    if len(shape) >= 4:
        return shape[1], math.prod(shape[2:])
    if len(shape) == 3:
        return shape[2], shape[1]
    if len(shape) == 2:
        return shape[1], 1
    return (shape[0] if shape else 1), 1


def node_cost(node: Operator, shapes: dict[str, TensorInfo], weights: set[str],
              counted_params: set[str]) -> NodeCost:
    """Cost of ``node``; ``weights`` are initializer names, ``counted_params`` those already counted."""
    inputs = [require(shapes, name, node) if name else None for name in node.input]
    outputs = [require(shapes, name, node) if name else None for name in node.output]
    cost = NodeCost()
    for name, info in zip(node.input, inputs):
        if info is None:
            continue
        if name in weights:
            cost.bytes_read_weight += info.nbytes
        else:
            cost.bytes_read_act += info.nbytes
    cost.bytes_written = sum(o.nbytes for o in outputs if o is not None)

    op = node.op_type
    attrs = attributes(node)
    x = inputs[0] if inputs else None
    y = outputs[0] if outputs else None
    out_numel = y.numel if y is not None else 0
    if x is not None:
        cost.in_channels, cost.in_spatial = _channels_spatial(x)
    if y is not None:
        cost.out_channels, cost.out_spatial = _channels_spatial(y)

    if op in ("Conv", "ConvTranspose") and x is not None and y is not None and len(inputs) > 1 and inputs[1] is not None:
        w = inputs[1]
        group = int(attrs.get("group", 1))
        kernel = w.shape[2:]
        cost.kernel = _pair(attrs.get("kernel_shape") or kernel)
        cost.stride = _pair(attrs.get("strides"))
        cost.dilation = max(attrs.get("dilations") or [1])
        cost.pad = sum(attrs.get("pads") or [0])
        cost.groups = group
        if op == "Conv":
            cost.macs = out_numel * w.shape[1] * math.prod(kernel)
        else:
            cost.macs = x.numel * w.shape[1] * math.prod(kernel)
        cost.flops = 2 * cost.macs + (out_numel if len(inputs) > 2 and inputs[2] is not None else 0)
        cost.extras["depthwise"] = group > 1 and group == x.shape[1]
    elif op == "Gemm" and y is not None and inputs[0] is not None:
        a = inputs[0]
        k = a.shape[0] if attrs.get("transA", 0) else a.shape[1]
        cost.macs = out_numel * k
        cost.flops = 2 * cost.macs + (out_numel if len(inputs) > 2 and inputs[2] is not None else 0)
        cost.in_channels, cost.out_channels = k, y.shape[-1]
    elif op == "MatMul" and y is not None and inputs[0] is not None:
        k = inputs[0].shape[-1]
        cost.macs = out_numel * k
        cost.flops = 2 * cost.macs
        cost.in_channels, cost.out_channels = k, (y.shape[-1] if y.shape else 1)
    elif op == "BatchNormalization":
        cost.macs, cost.flops = out_numel, 2 * out_numel
    elif op in ("LayerNormalization", "InstanceNormalization", "GroupNormalization", "RMSNormalization"):
        cost.macs, cost.flops = out_numel, 8 * out_numel
    elif op in ("Softmax", "LogSoftmax"):
        cost.flops = 5 * out_numel
    elif op in ("MaxPool", "AveragePool", "LpPool"):
        cost.kernel = _pair(attrs.get("kernel_shape"))
        cost.stride = _pair(attrs.get("strides"))
        cost.pad = sum(attrs.get("pads") or [0])
        cost.dilation = max(attrs.get("dilations") or [1])
        cost.flops = out_numel * math.prod(attrs.get("kernel_shape") or [1])
    elif op in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool") and x is not None:
        cost.kernel = _pair(x.shape[2:])
        cost.flops = x.numel
    elif op.startswith("Reduce") and x is not None:
        cost.flops = x.numel
    elif op in ("Resize", "Upsample") and x is not None and y is not None:
        mode = attrs.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        changed = sum(1 for a, b in zip(x.shape, y.shape) if a != b)
        per_out = {"linear": 2 ** changed, "bilinear": 2 ** changed, "cubic": 4 ** changed}.get(mode, 0)
        cost.macs = out_numel * per_out
        cost.flops = 2 * cost.macs
    elif category_of(op) in ("activation", "elementwise"):
        cost.flops = out_numel * _ELEMENTWISE_COST.get(op, 1)

    for index, numel in param_inputs(node, shapes, weights):  # scalars (Clip bounds…) are constants, not parameters
        name = node.input[index]
        if name not in counted_params:
            counted_params.add(name)
            cost.params += numel
    return cost
