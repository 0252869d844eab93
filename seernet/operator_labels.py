"""Measured kernel groups → labels on a graph's nodes, for the operator-level loss.

A profile (``profiler_worker.op_profile``) says, per executed kernel, which original ONNX nodes it ran and
its median time.  Here each kernel becomes a *group* of the graph's node rows: the additive read-out's
predicted costs of a group's nodes must sum to the group's measured time (a fused Conv+Relu kernel is one
label for two nodes).  Kernels whose nodes are all absent from the graph (the runtime's own layout reorders
and copies; nodes our graph drops) cannot label anything: their time stays in the whole-model label only,
and ``coverage`` says how much of the profiled time the groups hold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .graph import PerfGraph


@dataclass(frozen=True)
class OperatorLabels:
    """``node_group[i]``: the group node ``i`` belongs to (-1: none); ``group_ms[g]``: its measured time."""

    node_group: np.ndarray  # [num_nodes] int64
    group_ms: np.ndarray  # [groups] float64, > 0
    coverage: float  # Σ group_ms / Σ every profiled kernel's time

    @property
    def groups(self) -> int:
        return int(self.group_ms.shape[0])

    def weights(self) -> np.ndarray:
        """Each group's share of the labelled time: a model's groups weigh 1 together, as its whole-model
        label does, and a kernel counts by what it costs (a 0.001 ms Reshape's relative error is noise)."""
        total = float(self.group_ms.sum())
        return self.group_ms / total if total > 0 else self.group_ms


def label_operators(graph: PerfGraph, kernels: Iterable[tuple[Sequence[str], float]]) -> OperatorLabels | None:
    """``kernels``: (the original node names a kernel ran, its median ms).  None when no kernel maps to a node
    of ``graph`` (no profile, or one from a different export)."""
    row_of = {name: i for i, name in enumerate(graph.node_names)}
    node_group = np.full(graph.num_nodes, -1, dtype=np.int64)
    group_ms: list[float] = []
    profiled = 0.0
    for names, ms in kernels:
        profiled += max(float(ms), 0.0)
        rows = [row_of[n] for n in names if n in row_of and node_group[row_of[n]] < 0]
        if not rows or ms <= 0:
            continue
        node_group[rows] = len(group_ms)
        group_ms.append(float(ms))
    if not group_ms:
        return None
    ms_array = np.asarray(group_ms, dtype=np.float64)
    return OperatorLabels(node_group, ms_array, float(ms_array.sum() / profiled) if profiled > 0 else 0.0)
