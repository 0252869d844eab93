"""The only module that touches PyTorch Geometric: PerfGraph → ``Data``, lists → ``Batch``.

Keeping the graph library behind these two functions is what let us leave DGL
(no builds for current torch) without touching the rest of the code.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter, softmax

from .features import FeatureNormalizer, work_arrays
from .graph import PerfGraph
from .operator_labels import OperatorLabels

_NO_GROUP = torch.zeros(0, dtype=torch.float32)


def to_data(graph: PerfGraph, normalizer: FeatureNormalizer, y: Sequence[float] | None = None,
            operators: OperatorLabels | None = None, with_operators: bool = False) -> Data:
    """``with_operators``: add the operator-loss attributes (empty where ``operators`` is None), which every
    item of a training batch must carry alike: ``node_group`` (per node; group ids local to the graph, -1 for
    none), ``group_ms``, ``group_w`` (per group) and ``group_count`` (one per graph), collated by plain
    concatenation; ``seernet.train`` offsets the ids per graph."""
    node, edge, glob = normalizer.transform(graph)
    data = Data(
        x=torch.from_numpy(node),
        op=torch.from_numpy(graph.node_op),
        category=torch.from_numpy(graph.node_category),
        edge_index=torch.from_numpy(graph.edge_index),
        edge_attr=torch.from_numpy(edge).reshape(-1, normalizer.edge.mean.shape[0]),
        u=torch.from_numpy(glob),
        work=torch.from_numpy(work_arrays(graph.node_x)),
    )
    if y is not None:
        data.y = torch.tensor([list(y)], dtype=torch.float32)
    if with_operators or operators is not None:
        if operators is None:
            data.node_group = torch.full((graph.num_nodes,), -1, dtype=torch.long)
            data.group_ms, data.group_w = _NO_GROUP, _NO_GROUP
        else:
            data.node_group = torch.from_numpy(operators.node_group)
            data.group_ms = torch.from_numpy(operators.group_ms.astype("float32"))
            data.group_w = torch.from_numpy(operators.weights().astype("float32"))
        data.group_count = torch.tensor([operators.groups if operators is not None else 0], dtype=torch.long)
    return data


def collate(items: Sequence[Data]) -> Batch:
    return Batch.from_data_list(list(items))


def pool_sum(x: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Per-group sum along dim 0 (``index_add``: on CPU several times faster than a broadcast scatter)."""
    return x.new_zeros((size, *x.shape[1:])).index_add_(0, index, x)


def pool_mean(x: torch.Tensor, index: torch.Tensor, size: int, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-group mean (0 for an empty group); with ``weight``, each row counts that many times (a row that
    stands for several identical nodes, ``seernet.nn.plan``)."""
    if weight is None:
        counts = torch.bincount(index, minlength=size).clamp_min_(1).to(x.dtype)
        return pool_sum(x, index, size) / counts.view(-1, *([1] * (x.dim() - 1)))
    w = weight.view(-1, *([1] * (x.dim() - 1)))
    return pool_sum(x * w, index, size) / pool_sum(w, index, size).clamp_min(1.0)


def pool_max(x: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Per-group maximum (0 for an empty group), with the gradient shared equally among tied maxima.

    Same values and gradients as ``scatter(..., reduce="max")``, but its backward pass is a sum:
    on CPU, torch's own max-scatter backward took ~2.5× as long as forward and backward here
    together, and SynMM calls it in every block.  Without a gradient to share, it is the plain maximum.
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        return scatter(x, index, dim=0, dim_size=size, reduce="max")
    with torch.no_grad():
        peak = scatter(x, index, dim=0, dim_size=size, reduce="max")
        hit = (x == peak.index_select(0, index)).to(x.dtype)
        ties = scatter(hit, index, dim=0, dim_size=size, reduce="sum").clamp_min(1.0)
        share = hit / ties.index_select(0, index)
    return scatter(x * share, index, dim=0, dim_size=size, reduce="sum")


def segment_softmax(scores: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    return softmax(scores, index, num_nodes=size)


def pool_logsumexp(x: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """``log Σ exp(x)`` per group, stable (the group max is subtracted first); ``-inf`` for empty groups."""
    peak = scatter(x.detach(), index, dim=0, dim_size=size, reduce="max")
    total = pool_sum(torch.exp(x - peak.index_select(0, index)), index, size)
    return torch.log(total) + peak
