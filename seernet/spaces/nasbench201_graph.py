"""A NAS-Bench-201 network's performance graph straight from its arch string: no torch, no ONNX export.

Why: a NAS loop sends configs, and the export path costs ~100 ms of torch tracing plus a 6 ms
graph build per new cell; this costs well under a millisecond.  The result must be *the graph of
the exported ONNX* (the predictor was trained on those), so this module reproduces what
``torch.onnx.export`` (``dynamo=False``) makes of :class:`~seernet.spaces.nasbench201.NasBench201Net`
in eval mode, and ``tests/seernet/test_nasbench201_graph.py`` checks it against real exports:

* BatchNorm after a conv is folded into it (a bias); the folded biases are all zeros, so the
  exporter keeps one zero tensor per width (the stem's for 16 channels, the first reduction
  conv's for 32, the last BatchNorm's own bias for 64) and feeds every other conv an ``Identity``
  of it, listed first, last conv first; the last BatchNorm's running variance and mean are
  ``Identity`` nodes of its scale and bias (ones and zeros) — unless the network ends on a conv, into
  which that BatchNorm is folded too;
* ``skip_connect`` is no operator; ``none`` edges are left out; an operation whose result no later
  node reads is removed; identical operations on the same tensor (two ReLUs, two pools, the same
  sum) are computed once.

Operators then go through the same :func:`~seernet.graph.assemble_graph` as every ONNX model.
Cells whose output does not depend on their input (``x * 0``) and input sizes not divisible by 4
are not described here: the caller exports those as before.
"""
from __future__ import annotations

import time
from typing import NamedTuple, Sequence

import onnx

from ..costs import Op, attrs_key_of
from ..graph import PerfGraph, assemble_graph
from ..shapes import TensorInfo
from .nasbench201 import parse_arch_str

FLOAT = onnx.TensorProto.FLOAT
NUM_CLASSES = 10
CELLS_PER_STAGE = 5


class _Builder:
    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.identities: list[Op] = []
        self.shapes: dict[str, TensorInfo] = {}
        self.weights: set[str] = set()
        self.zero_bias: dict[int, str] = {}  # width → the one zero tensor the exporter keeps
        self._count = 0
        self._infos: dict[tuple[int, ...], TensorInfo] = {}
        self._attrs: dict[tuple, tuple[dict, tuple]] = {}

    def tensor(self, shape: tuple[int, ...], weight: bool = False, name: str = "") -> str:
        self._count += 1
        name = name or f"t{self._count}"
        info = self._infos.get(shape)
        if info is None:
            info = self._infos[shape] = TensorInfo(shape, FLOAT)
        self.shapes[name] = info
        if weight:
            self.weights.add(name)
        return name

    def identity_of(self, canonical: str) -> str:
        out = self.tensor(self.shapes[canonical].shape)
        self.identities.append(Op("Identity", [canonical], [out], f"Identity_{len(self.identities)}"))
        return out

    def bias(self, width: int, first_reads_directly: bool = False) -> str:
        """The folded (zero) bias of a conv of ``width`` outputs: the kept tensor for the first conv of a
        width that owns it, an ``Identity`` of it for every other."""
        if width not in self.zero_bias:
            self.zero_bias[width] = self.tensor((width,), weight=True, name=f"zero_bias_{width}")
            if first_reads_directly:
                return self.zero_bias[width]
        return self.identity_of(self.zero_bias[width])

    def op(self, op_type: str, inputs: list[str], shape: tuple[int, ...], name: str, **attrs: object) -> str:
        out = self.tensor(shape)
        token = (op_type, *(v if not isinstance(v, list) else tuple(v) for v in attrs.values()), *attrs)
        shared = self._attrs.get(token)
        if shared is None:
            shared = self._attrs[token] = (attrs, attrs_key_of(attrs))
        self.ops.append(Op(op_type, inputs, [out], name, shared[0], attrs_key=shared[1]))
        return out

    def conv(self, x: str, c_out: int, kernel: int, stride: int, name: str, bias: str | None) -> str:
        n, c_in, h, w = self.shapes[x].shape
        pad = kernel // 2
        out_h, out_w = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
        weight = self.tensor((c_out, c_in, kernel, kernel), weight=True)
        return self.op("Conv", [x, weight] + ([bias] if bias else []), (n, c_out, out_h, out_w), name,
                       dilations=[1, 1], group=1, kernel_shape=[kernel, kernel], pads=[pad] * 4,
                       strides=[stride, stride])

    def avg_pool(self, x: str, kernel: int, stride: int, pad: int, include_pad: int, name: str) -> str:
        n, c, h, w = self.shapes[x].shape
        shape = (n, c, (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1)
        return self.op("AveragePool", [x], shape, name, ceil_mode=0, count_include_pad=include_pad,
                       kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride, stride])


class _Occurrence(NamedTuple):
    """One operator call of an eager run: its value (an expression over ``"x"``) and the calls it reads."""

    expression: object
    reads: tuple[int, ...]  # indices of earlier occurrences; -1 is the cell input
    module: int = -1  # the edge's index in the cell's ``ops`` ModuleList (edges other than ``none``); -1: an add


def _cell_expressions(arch_str: str) -> tuple[object | None, list[_Occurrence], int]:
    """The cell output as an expression tree over the input ``"x"`` (``("relu", e)``, ``("conv", edge, k, e)``,
    ``("pool", e)``, ``("add", a, b)``; None when the output does not depend on the input), every operator
    call in the order an eager run makes them (which decides the exporter's order of operators and
    parameters), and the index of the call whose value is the output."""
    nodes: list[tuple[object, int] | None] = [("x", -1), None, None, None]
    calls: list[_Occurrence] = []

    def call(expression: object, *reads: int, module: int = -1) -> tuple[object, int]:
        calls.append(_Occurrence(expression, reads, module))
        return expression, len(calls) - 1

    module = -1
    for edge, (to_node, from_node, op) in enumerate(parse_arch_str(arch_str)):
        if op == "none":
            continue
        module += 1
        source = nodes[from_node]
        if source is None:
            continue
        if op == "skip_connect":
            out = source
        elif op == "avg_pool_3x3":
            out = call(("pool", source[0]), source[1], module=module)
        else:
            relu = call(("relu", source[0]), source[1], module=module)
            out = call(("conv", edge, 1 if op == "nor_conv_1x1" else 3, relu[0]), relu[1], module=module)
        previous = nodes[to_node]
        nodes[to_node] = out if previous is None else call(("add", previous[0], out[0]), previous[1], out[1])
    output = nodes[3]
    return (None, calls, -1) if output is None else (output[0], calls, output[1])


def _live_calls(calls: Sequence[_Occurrence], output: int) -> list[_Occurrence]:
    """The calls the output reads, in call order: the exporter removes dead calls first and only then merges
    identical ones, so a value computed twice is kept where its first *live* call was."""
    live, stack = set(), [output]
    while stack:
        i = stack.pop()
        if i < 0 or i in live:
            continue
        live.add(i)
        stack.extend(calls[i].reads)
    return [calls[i] for i in sorted(live)]


def _emit_cell(b: _Builder, cell: tuple[object, list[_Occurrence], int], x: str, width: int, prefix: str) -> str:
    """The operators of one cell in eager order, only the live calls (DCE), each distinct value once (CSE),
    named as the exporter names them: by module scope (``ops.K`` is the K-th edge module, ``ops.K.0`` /
    ``ops.K.1`` its ReLU and Conv), and the cell's own adds ``Add``, ``Add_1``, … in graph order (names are
    given after dead and duplicate calls are gone, so a profile's kernels map onto these nodes by name)."""
    expression, calls, output = cell
    done: dict[object, str] = {"x": x}
    adds = 0
    for call in _live_calls(calls, output):
        e = call.expression
        if e in done:
            continue
        kind, scope = e[0], f"{prefix}/ops.{call.module}"  # type: ignore[index]
        if kind == "relu":
            source = done[e[1]]  # type: ignore[index]
            out = b.op("Relu", [source], b.shapes[source].shape, f"{scope}/ops.{call.module}.0/Relu")
        elif kind == "pool":
            out = b.avg_pool(done[e[1]], 3, 1, 1, 0, f"{scope}/AveragePool")  # type: ignore[index]
        elif kind == "conv":
            _, _, kernel, source = e  # type: ignore[misc]
            out = b.conv(done[source], width, kernel, 1, f"{scope}/ops.{call.module}.1/Conv", b.bias(width))
        else:
            left, right = done[e[1]], done[e[2]]  # type: ignore[index]
            out = b.op("Add", [left, right], b.shapes[left].shape, f"{prefix}/Add" + (f"_{adds}" if adds else ""))
            adds += 1
        done[e] = out
    return done[expression]


def nasbench201_graph(arch_str: str, batch_size: int, input_size: int = 32, training: bool = False
                      ) -> PerfGraph | None:
    """The graph of the exported NAS-Bench-201 network for ``arch_str``, or None where this module does
    not describe it (see the module docstring): the caller then exports."""
    started = time.perf_counter()
    cell = _cell_expressions(arch_str)
    if cell[0] is None or input_size % 4 or input_size < 4:
        return None
    # a network that ends on a conv has the last BatchNorm folded into it: no BatchNorm, no kept 64-wide bias
    fold_last_norm = isinstance(cell[0], tuple) and cell[0][0] == "conv"
    b = _Builder()
    image = b.tensor((batch_size, 3, input_size, input_size), name="input")
    x = b.conv(image, 16, 3, 1, "/stem/stem.0/Conv", b.bias(16, first_reads_directly=True))
    width, index = 16, 0
    for stage in range(3):
        if stage > 0:
            prefix = f"/cells/cells.{index}"
            down = b.avg_pool(x, 2, 2, 0, 1, f"{prefix}/downsample/downsample.0/AveragePool")
            down = b.conv(down, 2 * width, 1, 1, f"{prefix}/downsample/downsample.1/Conv", None)
            if 2 * width == 64 and not fold_last_norm:  # the last BatchNorm's zero bias is the kept 64-wide one
                b.zero_bias.setdefault(64, b.tensor((64,), weight=True, name="lastact.0.bias"))
            a = b.op("Relu", [x], b.shapes[x].shape, f"{prefix}/conv_a/conv_a.0/Relu")
            a = b.conv(a, 2 * width, 3, 2, f"{prefix}/conv_a/conv_a.1/Conv",
                       b.bias(2 * width, first_reads_directly=True))
            a = b.op("Relu", [a], b.shapes[a].shape, f"{prefix}/conv_b/conv_b.0/Relu")
            a = b.conv(a, 2 * width, 3, 1, f"{prefix}/conv_b/conv_b.1/Conv", b.bias(2 * width))
            x = b.op("Add", [down, a], b.shapes[a].shape, f"{prefix}/Add")
            width, index = 2 * width, index + 1
        for _ in range(CELLS_PER_STAGE):
            x = _emit_cell(b, cell, x, width, f"/cells/cells.{index}")
            index += 1
    convs_identities = len(b.identities)
    if not fold_last_norm:
        scale = b.tensor((64,), weight=True, name="lastact.0.weight")
        shift = b.zero_bias.setdefault(64, b.tensor((64,), weight=True, name="lastact.0.bias"))
        var, mean = b.identity_of(scale), b.identity_of(shift)
        x = b.op("BatchNormalization", [x, scale, shift, mean, var], b.shapes[x].shape,
                 "/lastact/lastact.0/BatchNormalization", epsilon=1e-5, momentum=0.9)
    x = b.op("Relu", [x], b.shapes[x].shape, "/lastact/lastact.1/Relu")
    x = b.op("GlobalAveragePool", [x], (batch_size, 64, 1, 1), "/pool/GlobalAveragePool")
    x = b.op("Flatten", [x], (batch_size, 64), "/Flatten", axis=1)
    weight = b.tensor((NUM_CLASSES, 64), weight=True, name="classifier.weight")
    bias = b.tensor((NUM_CLASSES,), weight=True, name="classifier.bias")
    out = b.op("Gemm", [x, weight, bias], (batch_size, NUM_CLASSES), "/classifier/Gemm", alpha=1.0, beta=1.0, transB=1)
    # the exporter lists the conv biases' Identity nodes last conv first, then the BatchNorm's (variance, mean):
    # the first reader of a kept tensor is the one that counts its parameters
    identities = b.identities[:convs_identities][::-1] + b.identities[convs_identities:]
    for i, op in enumerate(identities):  # the exporter numbers them as they are listed
        op.name = f"Identity_{i}"
    graph = assemble_graph(identities + b.ops, b.shapes, b.weights, [b.shapes[image]], [b.shapes[out]],
                           batch_size, training, started)
    graph.arch_str = arch_str
    return graph


__all__ = ["nasbench201_graph"]
