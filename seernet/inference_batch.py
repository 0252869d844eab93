"""Many performance graphs → one network input, scaled in one pass: the serving path's batch.

Why not ``to_data`` + ``collate`` per graph: a NAS-Bench-201 graph's scaling and a PyG ``Data``
object cost ~0.15 ms each and the collation more, while the arithmetic is the same elementwise
work on the concatenated arrays.  The tensors here are exactly those of
``collate([to_data(g, normalizer) for g in graphs])`` for every attribute SeerNet reads (tested),
so serving and training still see identical inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .features import FeatureNormalizer, log_compressed, work_arrays
from .graph import EDGE_FEATURES, PerfGraph


@dataclass
class InferenceBatch:
    """What SeerNet's forward pass reads (the attributes of a collated PyG batch of the same graphs)."""

    x: torch.Tensor  # [N, node features], scaled
    op: torch.Tensor  # [N]
    category: torch.Tensor  # [N]
    edge_index: torch.Tensor  # [2, E], offset per graph
    edge_attr: torch.Tensor  # [E, edge features], scaled
    u: torch.Tensor  # [G, global features], scaled
    work: torch.Tensor  # [N, 2] log1p FLOPs and bytes
    batch: torch.Tensor  # [N] graph of each node

    @classmethod
    def from_graphs(cls, graphs: Sequence[PerfGraph], normalizer: FeatureNormalizer) -> "InferenceBatch":
        nodes = np.array([g.num_nodes for g in graphs], dtype=np.int64)
        node_x = np.concatenate([g.node_x for g in graphs])
        edge_x = np.concatenate([g.edge_x for g in graphs]).reshape(-1, len(EDGE_FEATURES))
        global_x = np.stack([g.global_x for g in graphs])
        offsets = np.repeat(np.cumsum(nodes) - nodes, [g.num_edges for g in graphs])
        edge_index = np.concatenate([g.edge_index for g in graphs], axis=1).reshape(2, -1) + offsets
        node, edge, glob = normalizer.standardize(log_compressed(node_x), log_compressed(edge_x),
                                                  log_compressed(global_x))
        return cls(
            x=torch.from_numpy(node),
            op=torch.from_numpy(np.concatenate([g.node_op for g in graphs])),
            category=torch.from_numpy(np.concatenate([g.node_category for g in graphs])),
            edge_index=torch.from_numpy(edge_index),
            edge_attr=torch.from_numpy(edge),
            u=torch.from_numpy(glob),
            work=torch.from_numpy(work_arrays(node_x)),
            batch=torch.from_numpy(np.repeat(np.arange(len(graphs), dtype=np.int64), nodes)),
        )


__all__ = ["InferenceBatch"]
