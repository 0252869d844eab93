"""The predictors we compare against, trained and scored on the same splits as SeerNet.

* ``LogLinear`` — log-linear regression on FLOPs, MACs, parameters, memory traffic and batch size.
* ``KernelSumGBT`` — nn-Meter-style: nn-Meter predicts each kernel with its own regressor and sums
  them; with only whole-model measurements we give gradient-boosted trees the per-kernel-type sums
  (FLOPs, bytes, count per operator category), the closest analogue that can be trained here.
* ``BRPNASGCN`` — BRP-NAS-style: a GCN over one-hot operator types only, with a global node joined to
  every node whose embedding is read out.  Batch size and input resolution are appended at the
  read-out (BRP-NAS never varies them; without them it could not tell a batch of 1 from 32).
* ``DIPPMSage`` — DIPPM-style: GraphSAGE over static node features and op types, sum pooling, and
  static whole-model features concatenated before the regression head.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from torch import nn
from torch_geometric.nn import GCNConv, SAGEConv, global_add_pool

from .data import Sample
from .graph import GLOBAL_FEATURES, NODE_FEATURES
from .nn import SeerNetConfig
from .op_vocab import CATEGORIES, OP_VOCAB

_G = {name: i for i, name in enumerate(GLOBAL_FEATURES)}


def _static(graph) -> np.ndarray:
    g = graph.global_x
    return np.log1p([g[_G["flops_sum"]], g[_G["macs_sum"]], g[_G["params_sum"]], g[_G["memory_sum"]],
                     g[_G["batch_size"]], g[_G["input_resolution"]], g[_G["nodes"]]])


class LogLinear:
    name = "loglinear"

    def fit(self, samples: Sequence[Sample], metric: str) -> "LogLinear":
        rows = [s for s in samples if metric in s.targets]
        self.model = Ridge(alpha=1e-3).fit(np.stack([_static(s.graph) for s in rows]),
                                           np.log([s.targets[metric] for s in rows]))
        return self

    def predict(self, samples: Sequence[Sample]) -> np.ndarray:
        return np.exp(self.model.predict(np.stack([_static(s.graph) for s in samples])))


def _kernel_sums(graph) -> np.ndarray:
    flops, memory = graph.node_x[:, NODE_FEATURES.index("flops")], (
        graph.node_x[:, NODE_FEATURES.index("bytes_read_act")] + graph.node_x[:, NODE_FEATURES.index("bytes_read_weight")]
        + graph.node_x[:, NODE_FEATURES.index("bytes_written")])
    columns = []
    for category in range(len(CATEGORIES)):
        mask = graph.node_category == category
        columns += [flops[mask].sum(), memory[mask].sum(), mask.sum()]
    return np.concatenate([np.log1p(columns), _static(graph)])


class KernelSumGBT:
    name = "nnmeter_kernel_gbt"

    def fit(self, samples: Sequence[Sample], metric: str) -> "KernelSumGBT":
        rows = [s for s in samples if metric in s.targets]
        self.model = HistGradientBoostingRegressor(max_iter=400, learning_rate=0.05, random_state=0).fit(
            np.stack([_kernel_sums(s.graph) for s in rows]), np.log([s.targets[metric] for s in rows]))
        return self

    def predict(self, samples: Sequence[Sample]) -> np.ndarray:
        return np.exp(self.model.predict(np.stack([_kernel_sums(s.graph) for s in samples])))


def _with_global_node(data) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Edge index with one extra node per graph, linked both ways to all its nodes, both directions kept."""
    batch = data.batch if getattr(data, "batch", None) is not None else torch.zeros(data.num_nodes, dtype=torch.long)
    graphs = int(data.u.size(0))
    global_ids = data.num_nodes + torch.arange(graphs)
    members = torch.arange(data.num_nodes)
    to_global = torch.stack([members, global_ids[batch]])
    edges = torch.cat([data.edge_index, data.edge_index.flip(0), to_global, to_global.flip(0)], dim=1)
    return edges, global_ids, batch


class BRPNASGCN(nn.Module):
    def __init__(self, config: SeerNetConfig, hidden: int = 64, layers: int = 4) -> None:
        super().__init__()
        self.config = config
        self.op = nn.Embedding(len(OP_VOCAB) + 1, hidden)  # one-hot ≡ embedding; last row: the global node
        self.convs = nn.ModuleList(GCNConv(hidden, hidden) for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(hidden + 2, hidden), nn.ReLU(), nn.Linear(hidden, len(config.metrics)))

    def forward(self, data) -> torch.Tensor:
        edges, global_ids, _ = _with_global_node(data)
        ops = torch.cat([data.op, torch.full((global_ids.numel(),), len(OP_VOCAB), dtype=torch.long)])
        x = self.op(ops)
        for conv in self.convs:
            x = torch.relu(conv(x, edges))
        shape = data.u[:, [GLOBAL_FEATURES.index("batch_size"), GLOBAL_FEATURES.index("input_resolution")]]
        return self.head(torch.cat([x[global_ids], shape], dim=-1))


class DIPPMSage(nn.Module):
    def __init__(self, config: SeerNetConfig, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        self.config = config
        self.op = nn.Embedding(len(OP_VOCAB), 16)
        self.inp = nn.Linear(config.node_features + 16, hidden)
        self.convs = nn.ModuleList(SAGEConv(hidden, hidden) for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(hidden + config.global_features, hidden), nn.ReLU(),
                                  nn.Linear(hidden, len(config.metrics)))

    def forward(self, data) -> torch.Tensor:
        batch = data.batch if getattr(data, "batch", None) is not None else torch.zeros(
            data.num_nodes, dtype=torch.long)
        x = torch.relu(self.inp(torch.cat([data.x, self.op(data.op)], dim=-1)))
        edges = torch.cat([data.edge_index, data.edge_index.flip(0)], dim=1)
        for conv in self.convs:
            x = torch.relu(conv(x, edges))
        return self.head(torch.cat([global_add_pool(x, batch, size=int(data.u.size(0))), data.u], dim=-1))


TREE_BASELINES = (LogLinear, KernelSumGBT)
GNN_BASELINES = {"brpnas_gcn": BRPNASGCN, "dippm_sage": DIPPMSage}
