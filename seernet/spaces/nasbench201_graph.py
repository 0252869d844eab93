"""A NAS-Bench-201 network's performance graph straight from its arch string: no torch, no ONNX export.

Why: a NAS loop sends configs, and the export path costs ~100 ms of torch tracing plus a 6 ms
graph build per new cell; this costs a few hundred microseconds.  The result must be *the graph
of the exported ONNX* (the predictor was trained on those), so this module reproduces what
``torch.onnx.export`` (``dynamo=False``) makes of :class:`~seernet.spaces.nasbench201.NasBench201Net`
in eval mode, and ``tests/seernet/test_nasbench201_graph.py`` checks it against real exports:

* BatchNorm after a conv is folded into it (a bias); the folded biases are all zeros, so the
  exporter keeps one zero tensor per width (the stem's for 16 channels, the first reduction
  conv's for 32, the last BatchNorm's own bias for 64) and feeds every other conv an ``Identity``
  of it, listed first, last conv first; the last BatchNorm's running variance and mean are
  ``Identity`` nodes of its scale and bias (ones and zeros) — unless the network ends on a conv, into
  which that BatchNorm is folded too; an inference graph reads the weights themselves, as onnxruntime
  computes each ``Identity`` of a weight once at load (``seernet.folding``);
* ``skip_connect`` is no operator; ``none`` edges are left out; an operation whose result no later
  node reads is removed; identical operations on the same tensor (two ReLUs, two pools, the same
  sum) are computed once.

How it stays cheap and still on the one feature path: operators are emitted as plain tuples
(type, attributes, input and output shapes), and each distinct tuple's feature row is computed
once per process by :func:`~seernet.graph.node_features` on a real :class:`~seernet.costs.Op` and
kept in a bounded bank; a network of ~150 operators has about 25 distinct ones.  Parameters
(counted where a weight is first read), edges and the model-wide features then follow exactly as
:func:`~seernet.graph.assemble_graph` computes them (:func:`~seernet.graph.graph_from_rows`).
Cells whose output does not depend on their input (``x * 0``) and input sizes not divisible by 4
are not described here: the caller exports those as before.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable, NamedTuple, Sequence

import numpy as np
import onnx

from ..costs import Op
from ..graph import EDGE_FEATURES, NODE_FEATURES, PerfGraph, edge_features, graph_from_rows, node_features
from ..shapes import TensorInfo
from .nasbench201 import parse_arch_str

FLOAT = onnx.TensorProto.FLOAT
NUM_CLASSES = 10
CELLS_PER_STAGE = 5
INPUT = -1  # the graph input's reference; operators are ≥ 0, weights ≤ -2

Shape = tuple[int, ...]

# attribute sets by token: an operator's feature key names its token, the bank's Op gets the dict
_ATTRS: dict[tuple, dict] = {
    ("pool", 3): dict(ceil_mode=0, count_include_pad=0, kernel_shape=[3, 3], pads=[1] * 4, strides=[1, 1]),
    ("pool", 2): dict(ceil_mode=0, count_include_pad=1, kernel_shape=[2, 2], pads=[0] * 4, strides=[2, 2]),
    ("bn",): dict(epsilon=1e-5, momentum=0.9),
    ("flatten",): dict(axis=1),
    ("gemm",): dict(alpha=1.0, beta=1.0, transB=1),
    (): {},
}
for _kernel in (1, 3):
    for _stride in (1, 2):
        _ATTRS[("conv", _kernel, _stride)] = dict(dilations=[1, 1], group=1, kernel_shape=[_kernel, _kernel],
                                                  pads=[_kernel // 2] * 4, strides=[_stride, _stride])


class _Rows:
    """One generation of a :class:`_RowBank`: rows by key, appended as new keys appear."""

    def __init__(self, width: int, compute: Callable[[object], list[float]]) -> None:
        self.width, self.compute = width, compute
        self.index: dict[object, int] = {}
        self.rows: list[list[float]] = []
        self.lock = threading.Lock()
        self._array = np.zeros((0, width))

    def row(self, key: object) -> int:
        found = self.index.get(key)
        if found is None:
            with self.lock:
                found = self.index.get(key)
                if found is None:
                    self.rows.append(self.compute(key))
                    found = self.index[key] = len(self.rows) - 1
        return found

    def array(self) -> np.ndarray:
        array = self._array
        if len(array) != len(self.rows):
            with self.lock:
                array = self._array = np.array(self.rows, dtype=np.float64).reshape(len(self.rows), self.width)
        return array


class _RowBank:
    """Feature rows by operator key (and edge rows by tensor shape), computed once per process by the general
    feature code.  A build reads one generation throughout; past ``max_rows`` later builds start a new one
    (keys differ by batch and input size, so the bank is bounded, not complete)."""

    def __init__(self, width: int, compute: Callable[[object], list[float]], max_rows: int = 2**14) -> None:
        self.width, self.compute, self.max_rows = width, compute, max_rows
        self.current = _Rows(width, compute)

    def generation(self) -> _Rows:
        rows = self.current
        if len(rows.rows) > self.max_rows:
            rows = self.current = _Rows(self.width, self.compute)
        return rows


def _node_row(key: tuple) -> list[float]:
    """The feature row of one operator key, by the general code on an equivalent :class:`Op`."""
    op_type, token, inputs, out = key
    names = [f"in{k}" for k in range(len(inputs))]
    shapes = {name: TensorInfo(shape, FLOAT) for name, (shape, _) in zip(names, inputs)}
    shapes["out"] = TensorInfo(out, FLOAT)
    weights = {name for name, (_, weight) in zip(names, inputs) if weight}
    return list(node_features(Op(op_type, names, ["out"], "", _ATTRS[token]), shapes, weights, set(), {}))


def _edge_row(shape: Shape) -> list[float]:
    return edge_features(TensorInfo(shape, FLOAT))


_NODE_ROWS = _RowBank(len(NODE_FEATURES), _node_row)
_EDGE_ROWS = _RowBank(len(EDGE_FEATURES), _edge_row)


class _Net:
    """The network's operators as they are emitted (an eager run's order): plain lists, each operator's
    features a row index into the bank."""

    def __init__(self, image: Shape, fold: bool) -> None:
        self.image = image
        self.fold = fold  # an inference graph: an Identity of a weight is computed at load (seernet.folding)
        self.folded = 0
        self.node_rows, self.edge_rows = _NODE_ROWS.generation(), _EDGE_ROWS.generation()
        self.types: list[str] = []
        self.names: list[str] = []
        self.rows: list[int] = []  # each operator's feature row
        self.out_rows: list[int] = []  # the edge row of each operator's output
        self.reads: list[int] = []  # operator, input slot, what it reads: three entries a read, in emitted order
        self.normalizations: list[int] = []  # the BatchNormalization operators (whose inputs 3, 4 are statistics)
        self.shapes: list[Shape] = []
        self.identities: list[int] = []  # Identity operators, in the order they were emitted
        self.weight_shapes: list[Shape] = []
        self.weight_numel: list[int] = []
        self.zero_bias: dict[int, int] = {}  # width → the one zero tensor the exporter keeps

    def shape(self, ref: int) -> Shape:
        if ref >= 0:
            return self.shapes[ref]
        return self.image if ref == INPUT else self.weight_shapes[-2 - ref]

    def weight(self, shape: Shape) -> int:
        self.weight_shapes.append(shape)
        self.weight_numel.append(math.prod(shape))
        return -1 - len(self.weight_shapes)

    def op(self, op_type: str, inputs: tuple[int, ...], shape: Shape, name: str, token: tuple = ()) -> int:
        k = len(self.shapes)
        if op_type == "BatchNormalization":
            self.normalizations.append(k)
        for slot, ref in enumerate(inputs):
            self.reads += (k, slot, ref)
        self.rows.append(self.node_rows.row((op_type, token, tuple([(self.shape(r), r <= -2) for r in inputs]),
                                             shape)))
        self.out_rows.append(self.edge_rows.row(shape))
        self.types.append(op_type)
        self.names.append(name)
        self.shapes.append(shape)
        return k

    def repeat(self, start: tuple[int, ...], end: tuple[int, ...], source: int, output: int, into: int,
               prefix: str, new_prefix: str) -> int:
        """Emit again the operators emitted between ``start`` and ``end`` (each a :meth:`mark`), reading
        ``into`` where they read ``source``: a cell repeated, its weights new, the tensors it read from
        before (the kept zero biases) shared, names under ``new_prefix``.  Returns the copy of ``output``."""
        first, first_read, first_weight, first_folded = start
        last, last_read, last_weight, last_folded = end
        self.folded += last_folded - first_folded
        offset, weight_offset = len(self.shapes) - first, len(self.weight_shapes) - first_weight
        for w in range(first_weight, last_weight):
            self.weight(self.weight_shapes[w])
        cut = len(prefix)
        for k in range(first, last):
            self.types.append(self.types[k])
            self.names.append(new_prefix + self.names[k][cut:] if self.names[k] else "")
            self.rows.append(self.rows[k])
            self.out_rows.append(self.out_rows[k])
            self.shapes.append(self.shapes[k])
            if self.types[k] == "Identity":
                self.identities.append(k + offset)
        reads = self.reads
        for r in range(first_read, last_read, 3):
            ref = reads[r + 2]
            if ref == source:
                ref = into
            elif ref >= first:
                ref += offset
            elif ref <= -2 - first_weight:
                ref -= weight_offset
            reads += (reads[r] + offset, reads[r + 1], ref)
        return into if output == source else output + offset if output >= first else output

    def mark(self) -> tuple[int, int, int, int]:
        return len(self.shapes), len(self.reads), len(self.weight_shapes), self.folded

    def identity_of(self, weight: int) -> int:
        if self.fold:  # its readers read the weight itself, counted where it is first read
            self.folded += 1
            return weight
        self.identities.append(len(self.shapes))
        return self.op("Identity", (weight,), self.shape(weight), "")

    def bias(self, width: int, first_reads_directly: bool = False) -> int:
        """The folded (zero) bias of a conv of ``width`` outputs: the kept tensor for the first conv of a
        width that owns it, an ``Identity`` of it for every other."""
        if width not in self.zero_bias:
            self.zero_bias[width] = self.weight((width,))
            if first_reads_directly:
                return self.zero_bias[width]
        return self.identity_of(self.zero_bias[width])

    def conv(self, x: int, c_out: int, kernel: int, stride: int, name: str, bias: int | None) -> int:
        n, c_in, h, w = self.shape(x)
        pad = kernel // 2
        out = (n, c_out, (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1)
        weight = self.weight((c_out, c_in, kernel, kernel))
        return self.op("Conv", (x, weight) if bias is None else (x, weight, bias), out, name, ("conv", kernel, stride))

    def avg_pool(self, x: int, kernel: int, name: str) -> int:
        """The cells' 3×3 stride-1 pool (padded, padding not counted) or the reduction's 2×2 stride-2 one."""
        n, c, h, w = self.shape(x)
        out = (n, c, h, w) if kernel == 3 else (n, c, h // 2, w // 2)
        return self.op("AveragePool", (x,), out, name, ("pool", kernel))

    def relu(self, x: int, name: str) -> int:
        return self.op("Relu", (x,), self.shape(x), name)

    def graph(self, output: int, batch_size: int, training: bool, started: float, conv_identities: int) -> PerfGraph:
        """The performance graph: identities first (the convs' last conv first, then the BatchNorm's), then
        every other operator in emitted order, as the exporter lists them."""
        identity = set(self.identities)
        order = self.identities[:conv_identities][::-1] + self.identities[conv_identities:] + [
            k for k in range(len(self.shapes)) if k not in identity]
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        node_x = self.node_rows.array()[np.array(self.rows, dtype=np.int64)[order]]
        # every read in graph order (operator, then input slot): edges where an operator is read, parameters
        # where a weight is first read (a float tensor of more than one element; BatchNorm's running
        # statistics, inputs 3 and 4, are never parameters)
        reads = np.array(self.reads, dtype=np.int64).reshape(-1, 3)
        reads = reads[np.argsort(position[reads[:, 0]] * 8 + reads[:, 1], kind="stable")]
        at, ref = position[reads[:, 0]], reads[:, 2]
        normalization = np.isin(reads[:, 0], self.normalizations)
        edges = ref >= 0
        src, dst = position[ref[edges]], at[edges]
        numel = np.array([0, 0, *self.weight_numel], dtype=np.int64)[np.where(ref <= -2, -ref, 0)]
        counts = (numel > 1) & ~(normalization & (reads[:, 1] >= 3))
        _, first = np.unique(ref[counts], return_index=True)
        node_x[:, 2] = np.bincount(at[counts][first], numel[counts][first], len(order))
        edge_rows = np.array(self.out_rows, dtype=np.int64)[ref[edges]]
        names = [f"Identity_{i}" for i in range(len(self.identities))] + [
            self.names[k] for k in order[len(self.identities):]]
        return graph_from_rows(node_x, [self.types[k] for k in order], names, np.stack([src, dst]),
                               self.edge_rows.array()[edge_rows], [TensorInfo(self.image, FLOAT)],
                               [TensorInfo(self.shape(output), FLOAT)], batch_size, training, started)


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


def _emit_cell(net: _Net, cell: tuple[object, list[_Occurrence], int], x: int, width: int, prefix: str) -> int:
    """The operators of one cell in eager order, only the live calls (DCE), each distinct value once (CSE),
    named as the exporter names them: by module scope (``ops.K`` is the K-th edge module, ``ops.K.0`` /
    ``ops.K.1`` its ReLU and Conv), and the cell's own adds ``Add``, ``Add_1``, … in graph order (names are
    given after dead and duplicate calls are gone, so a profile's kernels map onto these nodes by name)."""
    expression, calls, output = cell
    done: dict[object, int] = {"x": x}
    adds = 0
    for call in _live_calls(calls, output):
        e = call.expression
        if e in done:
            continue
        kind, scope = e[0], f"{prefix}/ops.{call.module}"  # type: ignore[index]
        if kind == "relu":
            out = net.relu(done[e[1]], f"{scope}/ops.{call.module}.0/Relu")  # type: ignore[index]
        elif kind == "pool":
            out = net.avg_pool(done[e[1]], 3, f"{scope}/AveragePool")  # type: ignore[index]
        elif kind == "conv":
            _, _, kernel, source = e  # type: ignore[misc]
            bias = net.bias(width)  # made before the conv's weight, as the eager call evaluates its arguments
            out = net.conv(done[source], width, kernel, 1, f"{scope}/ops.{call.module}.1/Conv", bias)
        else:
            left, right = done[e[1]], done[e[2]]  # type: ignore[index]
            out = net.op("Add", (left, right), net.shape(left), f"{prefix}/Add" + (f"_{adds}" if adds else ""))
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
    net = _Net((batch_size, 3, input_size, input_size), fold=not training)
    x = net.conv(INPUT, 16, 3, 1, "/stem/stem.0/Conv", net.bias(16, first_reads_directly=True))
    width, index = 16, 0
    for stage in range(3):
        if stage > 0:
            prefix = f"/cells/cells.{index}"
            down = net.avg_pool(x, 2, f"{prefix}/downsample/downsample.0/AveragePool")
            down = net.conv(down, 2 * width, 1, 1, f"{prefix}/downsample/downsample.1/Conv", None)
            if 2 * width == 64 and not fold_last_norm:  # the last BatchNorm's zero bias is the kept 64-wide one
                net.zero_bias.setdefault(64, net.weight((64,)))
            a = net.relu(x, f"{prefix}/conv_a/conv_a.0/Relu")
            a = net.conv(a, 2 * width, 3, 2, f"{prefix}/conv_a/conv_a.1/Conv",
                         net.bias(2 * width, first_reads_directly=True))
            a = net.relu(a, f"{prefix}/conv_b/conv_b.0/Relu")
            bias = net.bias(2 * width)
            a = net.conv(a, 2 * width, 3, 1, f"{prefix}/conv_b/conv_b.1/Conv", bias)
            x = net.op("Add", (down, a), net.shape(a), f"{prefix}/Add")
            width, index = 2 * width, index + 1
        # the stage's cells are one cell emitted once and repeated (same operators, new weights, next input)
        first, prefix = net.mark(), f"/cells/cells.{index}"
        cell_input = x
        cell_output = x = _emit_cell(net, cell, x, width, prefix)
        end = net.mark()
        for _ in range(CELLS_PER_STAGE - 1):
            index += 1
            x = net.repeat(first, end, cell_input, cell_output, x, prefix, f"/cells/cells.{index}")
        index += 1
    conv_identities = len(net.identities)
    if not fold_last_norm:
        scale = net.weight((64,))
        shift = net.zero_bias.setdefault(64, net.weight((64,)))
        var, mean = net.identity_of(scale), net.identity_of(shift)
        x = net.op("BatchNormalization", (x, scale, shift, mean, var), net.shape(x),
                   "/lastact/lastact.0/BatchNormalization", ("bn",))
    x = net.relu(x, "/lastact/lastact.1/Relu")
    x = net.op("GlobalAveragePool", (x,), (batch_size, 64, 1, 1), "/pool/GlobalAveragePool")
    x = net.op("Flatten", (x,), (batch_size, 64), "/Flatten", ("flatten",))
    weight, bias = net.weight((NUM_CLASSES, 64)), net.weight((NUM_CLASSES,))
    out = net.op("Gemm", (x, weight, bias), (batch_size, NUM_CLASSES), "/classifier/Gemm", ("gemm",))
    graph = net.graph(out, batch_size, training, started, conv_identities)
    graph.arch_str = arch_str
    graph.folded_at_load = net.folded
    return graph


__all__ = ["nasbench201_graph"]
