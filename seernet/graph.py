"""ONNX model → performance graph: operators as nodes, tensors as edges, whole-model globals.

This is the one feature-extraction path: the dataset, training, evaluation and
the server all call :func:`build_graph`.  Features are raw here (FLOPs, bytes…);
``seernet.features`` scales them for the network.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import onnx

from .budget import CpuBudget
from .costs import NodeCost, Operator, node_cost, param_inputs, parameter_elements, signature
from .errors import GraphBuildError, ImplausibleModelError, InvalidBatchSizeError, clip
from .folding import Sources, bytes_written_at_load, fold_at_load, new_parameters
from .loader import ModelSource, check_model, parse_model
from .op_vocab import CATEGORIES, category_index, op_index
from .settings import DEFAULT_LIMITS, Limits
from .shapes import TensorInfo, check_dims, infer_shapes, static_batch

FEATURE_SCHEMA_VERSION = 2
# Which operators a graph holds, its columns unchanged (caches key on both): 1 = an inference graph leaves out
# the operators the runtime computes once at load (seernet.folding); 2 = and counts the bytes they write
GRAPH_CONTENT_VERSION = 2

NODE_FEATURES: tuple[str, ...] = (
    "flops", "macs", "params", "bytes_read_act", "bytes_read_weight", "bytes_written", "arithmetic_intensity",
    "flops_share", "memory_share", "kernel_h", "kernel_w", "stride_h", "stride_w", "pad", "dilation", "groups",
    "in_channels", "out_channels", "in_spatial", "out_spatial", "num_inputs", "num_outputs", "depthwise",
)
DTYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.INT64,
          onnx.TensorProto.INT32, onnx.TensorProto.BOOL)
EDGE_FEATURES: tuple[str, ...] = ("bytes", "rank", "dim0", "dim1", "dim2", "dim3",
                                  "dtype_float32", "dtype_float16", "dtype_bfloat16", "dtype_int64", "dtype_int32",
                                  "dtype_bool", "dtype_other")
GLOBAL_FEATURES: tuple[str, ...] = (
    "batch_size", "nodes", "edges", "density", "flops_sum", "flops_mean", "flops_max", "macs_sum",
    "params_sum", "params_mean", "params_max", "memory_sum", "memory_mean", "memory_max",
    "arithmetic_intensity", "input_resolution", "input_bytes", "output_bytes", "training",
    # per operator category: where the work and the traffic are (what a kernel-sum model sees)
    *(f"{c}_{k}" for c in CATEGORIES for k in ("flops", "bytes", "count")),
)


@dataclass
class PerfGraph:
    """A model's performance graph, in numpy (the graph library is touched only in ``seernet.pyg``)."""

    node_op: np.ndarray  # [N] int64 index into op_vocab.OP_VOCAB
    node_category: np.ndarray  # [N] int64 index into op_vocab.CATEGORIES
    node_x: np.ndarray  # [N, len(NODE_FEATURES)] float64, raw
    edge_index: np.ndarray  # [2, E] int64, producer → consumer
    edge_x: np.ndarray  # [E, len(EDGE_FEATURES)] float64, raw
    global_x: np.ndarray  # [len(GLOBAL_FEATURES)] float64, raw
    batch_size: int
    training: bool
    op_types: list[str] = field(default_factory=list)
    node_names: list[str] = field(default_factory=list)
    build_ms: float = 0.0
    arch_str: str = ""  # the NAS-Bench-201 cell, when the graph was built from such a config (tabular features)
    fast_lane: bool = False  # built operator by operator from remembered shapes and rows (seernet.fast_graph)
    folded_at_load: int = 0  # operators left out: the runtime computes them once at load (seernet.folding)
    folded_bytes: float = 0.0  # what those operators write, all held at once while the runtime folds them

    @property
    def num_nodes(self) -> int:
        return int(self.node_op.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def nbytes(self) -> int:
        """Memory the graph holds (arrays and names): what a byte-bounded cache charges for it."""
        arrays = sum(a.nbytes for a in (self.node_op, self.node_category, self.node_x, self.edge_index, self.edge_x,
                                        self.global_x))
        return arrays + sum(map(len, self.op_types)) + sum(map(len, self.node_names)) + 100 * len(self.op_types)

    def global_value(self, name: str) -> float:
        return float(self.global_x[GLOBAL_FEATURES.index(name)])

    def summary(self) -> dict:
        return {
            "nodes": self.num_nodes,
            "edges": self.num_edges,
            "flops": self.global_value("flops_sum"),
            "macs": self.global_value("macs_sum"),
            "params": int(self.global_value("params_sum")),
            "memory_bytes": self.global_value("memory_sum"),
            "batch_size": self.batch_size,
            "training": self.training,
            "feature_schema_version": FEATURE_SCHEMA_VERSION,
            "op_counts": dict(Counter(self.op_types)),
            "build_ms": self.build_ms,
            "fast_lane": self.fast_lane,
            "folded_at_load": self.folded_at_load,
            "folded_at_load_mb": self.folded_bytes / 1e6,
        }


def edge_features(info: TensorInfo) -> list[float]:
    """One tensor's row of :data:`EDGE_FEATURES`."""
    dims = list(info.shape[:4]) + [0] * (4 - min(4, len(info.shape)))
    dtype = [1.0 if info.elem_type == t else 0.0 for t in DTYPES]
    dtype.append(0.0 if any(dtype) else 1.0)
    return [float(info.nbytes), float(len(info.shape)), *map(float, dims), *dtype]


class RowMemo:
    """Operators' rows by signature, kept across graphs: the models a service is sent repeat their operators
    (a ResNet-50's 169 operators are 53 distinct ones, and every ResNet-50 has the same 53), so a row costed
    once serves later graphs too.  Bounded: it starts over past ``max_entries``, and a signature carrying
    more than ``max_attribute_bytes`` of attributes is not kept (its key would hold them): ~10 MB at most."""

    def __init__(self, max_entries: int = 2**14, max_attribute_bytes: int = 256) -> None:
        self.max_entries, self.max_attribute_bytes = max_entries, max_attribute_bytes
        self._rows: dict[tuple, tuple] = {}

    def get(self, key: tuple) -> tuple | None:
        return self._rows.get(key)

    def __setitem__(self, key: tuple, value: tuple) -> None:
        if sum(len(a) for a in key[2] if isinstance(a, bytes)) > self.max_attribute_bytes:
            return
        if len(self._rows) >= self.max_entries:
            self._rows = {}
        self._rows[key] = value


_ROWS = RowMemo()


def node_features(node: Operator, shapes: dict[str, TensorInfo], weights: set[str], counted: set[str],
                  memo: dict | RowMemo, sources: dict[str, Sources] | None = None) -> list[float]:
    """One operator's row of :data:`NODE_FEATURES`.  ``memo``: rows already computed by the operator's
    signature (type, attributes, input shapes and which are weights, output shapes): a NAS network repeats
    the same operators dozens of times, and networks repeat each other's (:class:`RowMemo`).  Parameters
    depend on which weights were counted before, so they are added per call; a weight computed at load
    (``seernet.folding``) counts the parameters it was computed from (``sources``)."""
    key = signature(node, shapes, weights)
    hit = memo.get(key)
    if hit is None:
        cost = node_cost(node, shapes, weights, set())
        hit = memo[key] = (node_row(cost, node), param_inputs(node, shapes, weights))
    row, candidates = hit
    params = 0.0
    for index, numel in candidates:
        params += new_parameters(node.input[index], numel, sources, counted)
    if params != row[2]:
        row = list(row)
        row[2] = params
    return row


def node_row(cost: NodeCost, node: Operator) -> list[float]:
    memory = cost.memory_bytes
    return [
        cost.flops, cost.macs, cost.params, cost.bytes_read_act, cost.bytes_read_weight, cost.bytes_written,
        cost.flops / memory if memory else 0.0, 0.0, 0.0,
        *cost.kernel, *cost.stride, cost.pad, cost.dilation, cost.groups,
        cost.in_channels, cost.out_channels, cost.in_spatial, cost.out_spatial,
        len([i for i in node.input if i]), len(node.output), 1.0 if cost.extras.get("depthwise") else 0.0,
    ]


def _input_resolution(inputs: Sequence[TensorInfo]) -> tuple[float, float]:
    """(resolution, bytes) of the graph inputs: image side for NCHW, sequence length for N·L, width for N·C."""
    resolution, nbytes = 0.0, 0.0
    for info in inputs:
        nbytes += info.nbytes
        if not resolution and len(info.shape) >= 2:
            resolution = float(info.shape[-1] if len(info.shape) >= 3 else info.shape[1])
    return resolution, nbytes


def _check_topological(graph: onnx.GraphProto) -> None:
    """ONNX requires operators in topological order; a graph that is not (a cycle) is refused, not predicted."""
    produced_later: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if out:
                produced_later[out] = i
    for i, node in enumerate(graph.node):
        for name in node.input:
            j = produced_later.get(name)
            if j is not None and j >= i:
                raise GraphBuildError(f"operator {clip(node.name)!r} reads {clip(name)!r}, which is written by the "
                                      "same or a later operator: the graph has a cycle or is not in topological order")


def _check_finite(node_x: np.ndarray, edge_x: np.ndarray, global_x: np.ndarray) -> None:
    for name, array in (("operator", node_x), ("tensor", edge_x), ("model", global_x)):
        if not np.isfinite(array).all():
            raise ImplausibleModelError(f"the model's {name} costs are not finite numbers (its sizes overflow); "
                                        "no prediction can be made for it")


def build_graph(source: ModelSource, batch_size: int | None = 1, training: bool = False,
                dims: dict[str, int] | None = None, limits: Limits | None = None,
                max_batch_size: int | None = None) -> PerfGraph:
    """The performance graph of ``source`` run at ``batch_size``, within ``limits`` (size and CPU time).

    ``batch_size=None``: the batch the model was exported with when it is fixed, else 1.  A fixed-batch
    model asked for another batch is re-bound where its graph allows, and refused in one line otherwise.
    Raises a :class:`~seernet.errors.GraphBuildError` subtype for every refusal.
    """
    return build_graph_and_model(source, batch_size, training, dims, limits, max_batch_size)[0]


def build_graph_and_model(source: ModelSource, batch_size: int | None = 1, training: bool = False,
                          dims: dict[str, int] | None = None, limits: Limits | None = None,
                          max_batch_size: int | None = None) -> tuple[PerfGraph, onnx.ModelProto]:
    """:func:`build_graph`, and the model it parsed (the server strips and keeps it without parsing again)."""
    started = time.perf_counter()
    limits = limits or DEFAULT_LIMITS
    budget = CpuBudget(limits.max_build_cpu_s)
    max_batch = max_batch_size or limits.max_batch_size
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool)
                                   or not 1 <= batch_size <= max_batch):
        raise InvalidBatchSizeError(f"batch size must be an integer in 1..{max_batch}, got {batch_size!r}")
    model = parse_model(source, limits)
    fixed = static_batch(model)
    if batch_size is None:
        batch_size = min(fixed or 1, max_batch)
    if fixed is None or fixed == batch_size:
        from .fast_graph import fast_graph  # imports this module: the fast lane reuses its rows and read-out

        check_dims(model, dims, limits)
        fast = fast_graph(model, batch_size, dims, training, limits, budget, started)
        if fast is not None:
            return fast, model
    return _whole_model_graph(model, batch_size, training, dims, limits, budget, started), model


def reference_graph(source: ModelSource, batch_size: int = 1, training: bool = False,
                    dims: dict[str, int] | None = None, limits: Limits | None = None) -> PerfGraph:
    """The whole-model path alone (onnx's shape inference over the model, then every operator costed): the
    graph :func:`build_graph`'s fast lane must equal (tests compare them), and the path of every model
    the fast lane declines."""
    limits = limits or DEFAULT_LIMITS
    return _whole_model_graph(parse_model(source, limits), batch_size, training, dims, limits,
                              CpuBudget(limits.max_build_cpu_s), time.perf_counter())


def _whole_model_graph(model: onnx.ModelProto, batch_size: int, training: bool, dims: dict[str, int] | None,
                       limits: Limits, budget: CpuBudget, started: float) -> PerfGraph:
    check_model(model, limits)
    graph = model.graph
    _check_topological(graph)
    shapes = infer_shapes(model, batch_size, dims, limits, budget)
    budget.check("shape inference")
    weights = {t.name for t in graph.initializer}
    weights.update(n.output[0] for n in graph.node if n.op_type == "Constant" and n.output)
    nodes = [n for n in graph.node if n.op_type != "Constant"]
    inputs = [shapes[v.name] for v in graph.input if v.name not in weights and v.name in shapes]
    outputs = [shapes[o.name] for o in graph.output if o.name in shapes]
    sources: dict[str, Sources] = {}
    folded: list[Operator] = []
    if not training:  # what the runtime computes once at load is not part of an inference (seernet.folding)
        nodes, weights, sources, folded = fold_at_load(nodes, weights,
                                                       lambda name: parameter_elements(shapes.get(name)))
    built = assemble_graph(nodes, shapes, weights, inputs, outputs, batch_size, training, started, budget, sources)
    built.folded_at_load = len(folded)
    built.folded_bytes = sum(bytes_written_at_load(n.op_type, [shapes[o].nbytes if o in shapes else -1
                                                               for o in n.output if o]) for n in folded)
    return built



def assemble_graph(nodes: Sequence[Operator], shapes: dict[str, TensorInfo], weights: set[str],
                   inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo], batch_size: int, training: bool,
                   started: float | None = None, budget: CpuBudget | None = None,
                   sources: dict[str, Sources] | None = None) -> PerfGraph:
    """The graph of ``nodes`` (in topological order) given every tensor's shape: the one place features are
    computed, whether the operators come from an ONNX file or from a space that describes its own graph
    (``seernet.spaces.nasbench201_graph``).  ``inputs``/``outputs``: the model's data inputs and outputs;
    ``sources``: the parameters of weights computed at load (``seernet.folding``)."""
    started = time.perf_counter() if started is None else started
    budget = budget or CpuBudget(DEFAULT_LIMITS.max_build_cpu_s)
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if out:
                producer[out] = i
    counted: set[str] = set()
    node_rows = []
    for k, node in enumerate(nodes):
        if k % 512 == 0:
            budget.check("operator costs")
        node_rows.append(node_features(node, shapes, weights, counted, _ROWS, sources))
    node_x = np.array(node_rows, dtype=np.float64).reshape(len(nodes), len(NODE_FEATURES))
    src, dst, edge_rows = [], [], []
    edge_memo: dict[int, list[float]] = {}
    for j, node in enumerate(nodes):
        for name in node.input:
            i = producer.get(name)
            if i is not None:
                src.append(i)
                dst.append(j)
                info = shapes[name]
                row = edge_memo.get(id(info))
                if row is None:
                    row = edge_memo[id(info)] = edge_features(info)
                edge_rows.append(row)
    edge_x = np.array(edge_rows, dtype=np.float64).reshape(len(src), len(EDGE_FEATURES))
    return graph_from_rows(node_x, [nd.op_type for nd in nodes], [nd.name for nd in nodes],
                           np.array([src, dst], dtype=np.int64).reshape(2, len(src)), edge_x, inputs, outputs,
                           batch_size, training, started, budget, [nd.domain for nd in nodes])


_KINDS: dict[tuple[str, str], tuple[int, int]] = {}
_MAX_KINDS = 4096  # op types come from clients: remembered up to a bound


def _kind(op_type: str, domain: str) -> tuple[int, int]:
    """(vocabulary index, category index) of an operator type."""
    kind = _KINDS.get((op_type, domain))
    if kind is None:
        kind = (op_index(op_type, domain), category_index(op_type, domain))
        if len(_KINDS) < _MAX_KINDS:
            _KINDS[(op_type, domain)] = kind
    return kind


def graph_from_rows(node_x: np.ndarray, op_types: Sequence[str], names: Sequence[str], edge_index: np.ndarray,
                    edge_x: np.ndarray, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo], batch_size: int,
                    training: bool, started: float, budget: CpuBudget | None = None,
                    domains: Sequence[str] | None = None) -> PerfGraph:
    """The graph from its operators' raw rows (``node_x``, shares not yet filled in) and its edges: the
    model-wide part of the one feature path (shares, totals, per-category sums), shared by
    :func:`assemble_graph` and by builders that compute rows their own way (``nasbench201_graph``)."""
    n, e = len(op_types), int(edge_index.shape[1])
    flops = node_x[:, 0]
    memory = node_x[:, 3] + node_x[:, 4] + node_x[:, 5]
    total_flops, total_memory = float(flops.sum()), float(memory.sum())
    node_x[:, NODE_FEATURES.index("flops_share")] = flops / total_flops if total_flops else 0.0
    node_x[:, NODE_FEATURES.index("memory_share")] = memory / total_memory if total_memory else 0.0

    ids = np.array([_kind(t, d) for t, d in zip(op_types, domains or [""] * n)], dtype=np.int64).reshape(n, 2)
    categories = ids[:, 1].copy()
    by_category = np.stack([np.bincount(categories, flops, len(CATEGORIES)),
                            np.bincount(categories, memory, len(CATEGORIES)),
                            np.bincount(categories, minlength=len(CATEGORIES)).astype(np.float64)], axis=1)
    per_category = by_category.ravel().tolist()
    resolution, input_bytes = _input_resolution(inputs)
    output_bytes = float(sum(info.nbytes for info in outputs))
    params = node_x[:, 2]
    global_x = np.array([
        batch_size, n, e, e / (n * (n - 1)) if n > 1 else 0.0,
        total_flops, total_flops / max(n, 1), float(flops.max(initial=0.0)), float(node_x[:, 1].sum()),
        float(params.sum()), float(params.sum()) / max(n, 1), float(params.max(initial=0.0)),
        total_memory, total_memory / max(n, 1), float(memory.max(initial=0.0)),
        total_flops / total_memory if total_memory else 0.0, resolution, input_bytes, output_bytes, float(training),
        *per_category,
    ], dtype=np.float64)
    _check_finite(node_x, edge_x, global_x)
    if budget is not None:
        budget.check("features")
    return PerfGraph(
        node_op=ids[:, 0].copy(),
        node_category=categories,
        node_x=node_x,
        edge_index=edge_index,
        edge_x=edge_x,
        global_x=global_x,
        batch_size=batch_size,
        training=training,
        op_types=list(op_types),
        node_names=list(names),
        build_ms=(time.perf_counter() - started) * 1000.0,
    )

