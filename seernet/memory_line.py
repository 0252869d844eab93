"""Inference memory from what a runtime must hold: its weights and the activations alive at once.

Why: the peak memory onnxruntime adds for a model is its weights (held about twice: the parsed model and the
initialised tensors) plus the arena its activations need, and both follow from the graph.  A network trained on
our generated spaces learned neither: on the Intel Xeon's 164 real vision architectures the reference SeerNet
predicts ``infer_mem_mb`` at 30 % MAPE, on 22 published Hugging Face models at 58 %; this line, fitted on the
Xeon's own 473 rows, at 18 % and 8 % (README, "Memory from weights and live activations").

``peak live activations``: the nodes run in the graph's (topological) order; a tensor is allocated when its
producer runs and freed after its last consumer; a tensor no node consumes is an output and lives to the end.
The Identity the exporter puts on a shared weight carries a weight, not an activation
(``operator_trees.weight_alias_nodes``, as ``node_bytes`` reads it), so ALBERT's twelve uses of one layer
count once.

``computed at load``: what the operators on weights alone write while onnxruntime folds them at session
creation (``seernet.folding``), all held until its optimiser drops the unused ones: a model that standardises
its weights in the graph (NF-Nets, BiT) peaks at several copies of its weights.  Without this term timm's
NF-SE-ResNet-50 was predicted at 228 MB where it measured 608.  A predictor fitted before the term existed
has three coefficients and predicts from the first three terms, as it was fitted.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .data import Sample
from .graph import EDGE_FEATURES, NODE_FEATURES, PerfGraph
from .operator_trees import weight_alias_nodes

METRIC = "infer_mem_mb"
MEMORY_TERMS = ("constant MB", "weights MB", "peak live activations MB", "computed at load MB")
MIN_ROWS = 20  # fewer rows than this cannot pin the coefficients down
_BYTES = EDGE_FEATURES.index("bytes")
_WRITTEN = NODE_FEATURES.index("bytes_written")


def peak_live_bytes(graph: PerfGraph) -> float:
    """The most activation bytes alive at once when ``graph``'s nodes run in order (see the module doc)."""
    n = graph.num_nodes
    if n == 0:
        return 0.0
    born = np.zeros(n)
    freed = np.zeros(n)
    consumed = np.zeros(n, dtype=bool)
    if graph.num_edges:
        src, dst = graph.edge_index
        keep = ~weight_alias_nodes(graph)[src]
        consumed[src] = True
        size = graph.edge_x[:, _BYTES]
        # one tensor per (producer, size): a node's output read by several consumers is allocated once
        tensors, tensor_of = np.unique(np.column_stack([src, size])[keep], axis=0, return_inverse=True)
        tensor_of = tensor_of.reshape(-1)
        last = np.full(len(tensors), -1)
        np.maximum.at(last, tensor_of, dst[keep])
        np.add.at(born, tensors[:, 0].astype(np.int64), tensors[:, 1])
        np.add.at(freed, last, tensors[:, 1])
    outputs = ~consumed  # graph outputs (and dead ends) are allocated and never freed
    born[outputs] += graph.node_x[outputs, _WRITTEN]
    live = np.cumsum(born) - (np.cumsum(freed) - freed)  # after node v's outputs exist, before its inputs go
    return float(max(live.max(), 0.0))


def memory_terms(graph: PerfGraph) -> np.ndarray:
    """The values of :data:`MEMORY_TERMS` for ``graph`` (float32 weights: 4 bytes a parameter)."""
    return np.array([1.0, graph.global_value("params_sum") * 4 / 1e6, peak_live_bytes(graph) / 1e6,
                     graph.folded_bytes / 1e6])


def fit_memory_line(samples: Sequence[Sample], metric: str = METRIC) -> list[float] | None:
    """Non-negative coefficients of :data:`MEMORY_TERMS`, least squares on relative error over the samples
    measured for ``metric``; None with fewer than :data:`MIN_ROWS` of them.  A term no sample has (no model
    computes anything at load) gets 0, not whatever the solver leaves in a column of zeros."""
    from scipy.optimize import lsq_linear

    measured = [s for s in samples if s.targets.get(metric, 0) > 0]
    if len(measured) < MIN_ROWS:
        return None
    terms = np.stack([memory_terms(s.graph) for s in measured])
    truth = np.array([s.targets[metric] for s in measured])
    present = terms.any(axis=0)
    coefficients = np.zeros(len(MEMORY_TERMS))
    coefficients[present] = lsq_linear(terms[:, present] / truth[:, None], np.ones(len(truth)),
                                       bounds=(0, np.inf)).x
    return [float(c) for c in coefficients]


def predict_memory(graphs: Sequence[PerfGraph], coefficients: Sequence[float]) -> np.ndarray:
    """The line's ``infer_mem_mb`` for each graph (from as many terms as there are ``coefficients``)."""
    if not graphs:
        return np.zeros(0)
    return np.stack([memory_terms(g)[:len(coefficients)] for g in graphs]) @ np.asarray(coefficients, dtype=np.float64)


__all__ = ["MEMORY_TERMS", "METRIC", "fit_memory_line", "memory_terms", "peak_live_bytes", "predict_memory"]
