"""Which rows SeerNet computes at each layer: every node and edge (training), or one per equivalence class.

Why classes: a message-passing network's state for a node after *k* layers is a function of
the node's *k*-hop in-neighbourhood (and of its graph's global state), so two nodes of one graph
whose *k*-round colour refinement (Weisfeiler–Leman, with edge features) agrees hold identical
states.  NAS candidates repeat themselves — five identical cells per stage, twelve identical
transformer layers — so after three rounds a NAS-Bench-201 network of 160 operators has about
65 distinct nodes.  Inference computes one row per class; sums and means weigh each class by
how many nodes it stands for, maxima need no weight.  The result equals the full computation up
to float rounding (tested), at a fraction of the work.

A :class:`Plan` is built from a collated batch: :func:`identity_plan` (every row; what training
uses, nothing to compute) or :func:`compressed_plan` (numpy colour refinement, a few hundred
microseconds for fifty graphs).  The layers read only the index tensors below.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Layer:
    """One graph-network block's rows: edge classes computed from the previous layer, node classes after it."""

    edge_prev: torch.Tensor | None  # [EC] row of the previous edge states each edge class continues (None: same)
    edge_src: torch.Tensor  # [EC] previous-layer node row of the edge's source
    edge_dst: torch.Tensor  # [EC] previous-layer node row of the edge's destination
    edge_graph: torch.Tensor  # [EC] graph of the edge
    agg_edge: torch.Tensor | None  # [A] edge row aggregated by each entry (None: every edge, in order)
    agg_node: torch.Tensor  # [A] node row (this layer's) each entry is aggregated into
    node_prev: torch.Tensor | None  # [C] previous-layer row each node class continues (None: same)
    node_graph: torch.Tensor  # [C] graph of the node class
    node_count: torch.Tensor | None  # [C] nodes the class stands for (None: one each)

    @property
    def size(self) -> int:
        return int(self.node_graph.size(0))


@dataclass
class Plan:
    node_rows: torch.Tensor | None  # [C0] row of the input node features of each first-level class (None: all)
    edge_rows: torch.Tensor | None  # [EC0] row of the input edge features of each first-level edge class
    node_graph: torch.Tensor  # [C0]
    node_count: torch.Tensor | None  # [C0]
    layers: list[Layer]
    num_graphs: int
    work_rows: torch.Tensor | None = None  # input row of a node of each last-layer class (its FLOPs, bytes)

    def final(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(graph, count) of the last layer's node rows: what the read-outs pool."""
        if self.layers:
            return self.layers[-1].node_graph, self.layers[-1].node_count
        return self.node_graph, self.node_count


def identity_plan(num_nodes: int, edge_index: torch.Tensor, batch: torch.Tensor, num_graphs: int,
                  layers: int) -> Plan:
    """Every node and edge its own row (the plain computation, differentiable as usual)."""
    src, dst = edge_index
    edge_graph = batch.index_select(0, src)
    layer = Layer(None, src, dst, edge_graph, None, dst, None, batch, None)
    return Plan(None, None, batch, None, [layer] * layers, num_graphs)


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _row_hash(columns: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of an int64 matrix (multiply-xorshift per column)."""
    h = np.full(columns.shape[0], 0xCBF29CE484222325, dtype=np.uint64)
    for k in range(columns.shape[1]):
        h ^= columns[:, k].view(np.uint64)
        h *= _MIX
        h ^= h >> np.uint64(29)
    return h


def _exact_classes(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys = columns.view(np.dtype((np.void, columns.dtype.itemsize * columns.shape[1]))).ravel()
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), first, counts


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group of each key, a row of each group, rows per group), groups in key order: ``np.unique``'s answer
    without its stable sort (a class's representative may be any of its rows: they are equal), which was a
    quarter of a plan's time."""
    if not len(keys):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    order = np.argsort(keys)
    ordered = keys[order]
    change = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(np.concatenate(([True], change)))
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[order] = np.concatenate(([0], np.cumsum(change)))
    return inverse, order[starts], np.diff(np.append(starts, len(keys)))


def _classes(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class of each row, first row of each class, rows per class) for the rows of an integer matrix.

    Rows are grouped by a 64-bit hash (a numeric sort, fast), then every row is checked against its
    class's first row: on a collision the exact byte-wise grouping is used, so classes are always exact."""
    columns = np.ascontiguousarray(columns, dtype=np.int64)
    inverse, first, counts = _group(_row_hash(columns))
    if not np.array_equal(columns, columns[first[inverse]]):
        return _exact_classes(columns)
    return inverse, first, counts


def _bits(array: np.ndarray) -> np.ndarray:
    """Float features as exact integers (their bit patterns), so equal rows and only equal rows share a class."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    return array.view(np.int32).astype(np.int64).reshape(array.shape[0], -1)


class _InEdges:
    """Edges grouped by destination once, to hash each node's multiset of incoming edge classes per round."""

    def __init__(self, dst: np.ndarray, n: int) -> None:
        self.order = np.argsort(dst, kind="stable")
        self.degree = np.bincount(dst, minlength=n)
        self.receivers = np.flatnonzero(self.degree)
        self.starts = (np.cumsum(self.degree) - self.degree)[self.receivers]
        self.n = n

    def multiset_hash(self, keys: np.ndarray, salt: int) -> np.ndarray:
        """Per node, a 64-bit hash of the multiset of ``keys`` of its in-edges (a sum of mixed keys: order-free)."""
        mixed = (keys.astype(np.uint64) + np.uint64(salt)) * _MIX
        mixed ^= mixed >> np.uint64(31)
        mixed *= np.uint64(0xBF58476D1CE4E5B9)
        mixed ^= mixed >> np.uint64(29)
        out = np.zeros(self.n, dtype=np.uint64)
        if len(self.receivers):
            out[self.receivers] = np.add.reduceat(mixed[self.order], self.starts)
        return out.view(np.int64)


def compressed_plan(node_features: np.ndarray, edge_features: np.ndarray, edge_index: np.ndarray,
                    batch: np.ndarray, num_graphs: int, layers: int) -> Plan:
    """One row per colour class of each layer (see the module docstring).

    ``node_features``: everything a node's first state is computed from (scaled features, op and
    category ids, FLOPs and bytes), one row per node; ``edge_features`` likewise per edge.
    Classes never span graphs (the graph id is part of the first colour).
    """
    with np.errstate(over="ignore"):
        return _compressed_plan(node_features, edge_features, edge_index, batch, num_graphs, layers)


def _compressed_plan(node_features: np.ndarray, edge_features: np.ndarray, edge_index: np.ndarray,
                     batch: np.ndarray, num_graphs: int, layers: int) -> Plan:
    src, dst = edge_index
    n = node_features.shape[0]
    colour, first, counts = _classes(np.concatenate([batch[:, None].astype(np.int64), _bits(node_features)], 1))
    edge_colour, edge_first, _ = _classes(_bits(edge_features)) if len(src) else (
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    as_tensor = torch.from_numpy
    plan = Plan(as_tensor(first), as_tensor(edge_first), as_tensor(batch[first]), as_tensor(counts.astype(np.float32)),
                [], num_graphs)
    incoming = _InEdges(dst, n)
    for _ in range(layers):
        # edges continue their own class and read both ends' classes of the previous layer
        new_edge, e_first, _ = _classes(np.stack([edge_colour, colour[src], colour[dst]], 1)) if len(src) else (
            edge_colour, edge_first, None)
        # a node continues its class and receives the multiset of its in-edges' new classes
        h1 = incoming.multiset_hash(new_edge, 1)
        h2 = incoming.multiset_hash(new_edge, 0x5DEECE66D)
        new_colour, n_first, n_counts = _classes(np.stack([colour, h1, h2, incoming.degree], 1))
        into_rep = n_first[new_colour[dst]] == dst  # in-edges of each class's representative node
        plan.layers.append(Layer(
            edge_prev=as_tensor(edge_colour[e_first]), edge_src=as_tensor(colour[src[e_first]]),
            edge_dst=as_tensor(colour[dst[e_first]]), edge_graph=as_tensor(batch[src[e_first]]),
            agg_edge=as_tensor(new_edge[into_rep]), agg_node=as_tensor(new_colour[dst[into_rep]]),
            node_prev=as_tensor(colour[n_first]), node_graph=as_tensor(batch[n_first]),
            node_count=as_tensor(n_counts.astype(np.float32))))
        colour, edge_colour, first = new_colour, new_edge, n_first
    plan.work_rows = as_tensor(first)
    return plan


__all__ = ["Layer", "Plan", "compressed_plan", "identity_plan"]
