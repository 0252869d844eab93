"""SeerNet: performance graph → predicted (normalised, log-scale) metrics."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..graph import EDGE_FEATURES, GLOBAL_FEATURES, NODE_FEATURES
from ..op_vocab import CATEGORIES, OP_VOCAB
from .gn_block import GraphNetworkBlock, mlp
from .additive import AdditiveReadout
from .gnpb import GlobalNode
from .parts import linear_of_parts
from .plan import Plan, identity_plan
from .synmm import MeanAggregation, SynMM


@dataclass
class SeerNetConfig:
    """Architecture of one network.  ``metrics`` > 1 makes it SeerNet-Multi (a head per metric)."""

    metrics: tuple[str, ...] = ("infer_time_ms",)
    hidden: int = 64
    layers: int = 3
    op_embedding: int = 16
    category_embedding: int = 8
    synmm_readout: bool = True
    synmm_aggregation: bool = True
    gnpb: bool = True
    dropout: float = 0.0
    additive_readout: bool = True
    target_log_mean: tuple[float, ...] = ()  # the target normaliser's log-space statistics (additive read-out)
    target_log_std: tuple[float, ...] = ()
    work_log_scale: tuple[float, ...] = ()  # median log FLOPs, log bytes, log operators of the training graphs
    node_features: int = len(NODE_FEATURES)
    edge_features: int = len(EDGE_FEATURES)
    global_features: int = len(GLOBAL_FEATURES)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["metrics"] = list(self.metrics)
        for key in ("target_log_mean", "target_log_std", "work_log_scale"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SeerNetConfig":
        data = dict(data)
        data["metrics"] = tuple(data["metrics"])
        data.pop("extra", None)  # an unused field of manifests written before it was removed
        data.setdefault("additive_readout", False)  # manifests written before the additive read-out existed
        for key in ("target_log_mean", "target_log_std", "work_log_scale"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


class SeerNet(nn.Module):
    """Encoders → stacked graph-network blocks (with GNPB) → SynMM read-out → one head per metric."""

    def __init__(self, config: SeerNetConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.op_embedding = nn.Embedding(len(OP_VOCAB), config.op_embedding)
        self.category_embedding = nn.Embedding(len(CATEGORIES), config.category_embedding)
        self.node_encoder = mlp(config.node_features + config.op_embedding + config.category_embedding, h)
        self.edge_encoder = mlp(config.edge_features, h)
        self.global_encoder = mlp(config.global_features, h)
        self.global_node = GlobalNode(h) if config.gnpb else None
        self.blocks = nn.ModuleList(GraphNetworkBlock(h, config.synmm_aggregation, config.gnpb, config.dropout)
                                    for _ in range(config.layers))
        self.readout = SynMM(h) if config.synmm_readout else MeanAggregation(h)
        readout_in = 3 * h if config.gnpb else 2 * h
        self.trunk = mlp(readout_in, h, 2 * h)
        self.heads = nn.ModuleDict({m: nn.Linear(h, 1) for m in config.metrics})
        k = len(config.metrics)  # statistics are filled in by fit_ensemble; neutral ones for a bare network
        self.additive = (AdditiveReadout(h, config.metrics, config.target_log_mean or (0.0,) * k,
                                         config.target_log_std or (1.0,) * k, config.work_log_scale or (0.0,) * 3)
                         if config.additive_readout else None)

    def forward(self, data, plan: Plan | None = None) -> torch.Tensor:
        """``[num_graphs, len(metrics)]`` predictions in normalised log space.  ``plan``: the rows to compute
        (:func:`~seernet.nn.plan.compressed_plan` for inference; default every node and edge)."""
        plan = plan or self.plan_of(data)
        return self.predict_heads(self.embed(data, plan), data, plan)

    def plan_of(self, data) -> Plan:
        """Every node and edge of ``data``: the plain computation (training, explanations)."""
        return identity_plan(data.x.size(0), data.edge_index, _batch_index(data), int(data.u.size(0)),
                             self.config.layers)

    def predict_heads(self, shared: tuple[torch.Tensor, ...], data, plan: Plan | None = None) -> torch.Tensor:
        """Every metric from the shared representation: the pooled heads, plus the additive
        read-out's per-operator sum where enabled (the heads then learn a correction to it)."""
        z = shared[0]
        out = torch.cat([self.heads[m](z) for m in self.config.metrics], dim=-1)
        if self.additive is not None:
            _, x, g = shared
            plan = plan or self.plan_of(data)
            graph, count = plan.final()
            work = data.work if plan.work_rows is None else data.work.index_select(0, plan.work_rows)
            out = out + self.additive(x, g, graph, z.size(0), work, count)
        return out

    def operator_costs(self, data) -> torch.Tensor:
        """``[num_nodes, metrics]``: each operator's cost as the additive read-out sees it (log ms, log MB).

        Where the time goes, per operator: the per-node terms the prediction sums; a network without the
        additive read-out has no per-operator view and raises."""
        if self.additive is None:
            raise ValueError("this predictor has no additive read-out: it cannot break a prediction down by operator")
        _, x, g = self.embed(data)
        return self.additive.node_terms(x, g, _batch_index(data), data.work)

    def embed(self, data, plan: Plan | None = None) -> tuple[torch.Tensor, ...]:
        """The shared representation every metric head reads (where multi-task PCGrad projects):
        ``(graph vector,)``, and with the additive read-out ``(graph vector, node rows, global node)``."""
        plan = plan or self.plan_of(data)
        size = plan.num_graphs
        x = self._encode_nodes(data, plan.node_rows)
        e = self.edge_encoder(data.edge_attr if plan.edge_rows is None else data.edge_attr.index_select(0, plan.edge_rows))
        u = self.global_encoder(data.u)
        graph, count = plan.node_graph, plan.node_count
        g = self.global_node.initial(x, graph, size, count) if self.global_node is not None else None
        for block, rows in zip(self.blocks, plan.layers):
            x, e = block(x, e, u, g, rows)
            graph, count = rows.node_graph, rows.node_count
            if self.global_node is not None:
                g = self.global_node(g, x, graph, size, count)
        pooled = [self.readout(x, graph, size, count), u] + ([g] if g is not None else [])
        z = self.trunk(torch.cat(pooled, dim=-1))
        if self.additive is None:
            return (z,)
        return z, x, (g if g is not None else torch.zeros_like(u))

    def _encode_nodes(self, data, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``node_encoder([x ‖ op embedding ‖ category embedding])`` for the input ``rows`` (None: all): the
        embeddings' share of the first layer is projected once per vocabulary entry and gathered, not computed
        per node on a concatenation."""
        features, ops, categories = data.x, data.op, data.category
        if rows is not None:
            features, ops, categories = features.index_select(0, rows), ops.index_select(0, rows), \
                categories.index_select(0, rows)
        first, act, last = self.node_encoder
        width, op_width = features.size(-1), self.config.op_embedding
        op_part = self.op_embedding.weight @ first.weight[:, width:width + op_width].t()
        category_part = self.category_embedding.weight @ first.weight[:, width + op_width:].t()
        hidden = linear_of_parts(first, [features]) + op_part.index_select(0, ops) \
            + category_part.index_select(0, categories)
        return last(act(hidden))


def _batch_index(data) -> torch.Tensor:
    """Graph index of every node (all zeros for a single graph)."""
    if getattr(data, "batch", None) is not None:
        return data.batch
    return torch.zeros(data.x.size(0), dtype=torch.long, device=data.x.device)
