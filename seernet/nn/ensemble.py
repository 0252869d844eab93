"""An ensemble's members as one computation: inference with every weight stacked along a member axis.

Why: serving runs every member of the ensemble over the same plan (``seernet.nn.plan``).
Member by member, a pass is ~400 small tensor operations each, and at the batch sizes a
service sees, dispatching them costs as much as their arithmetic (one NAS-Bench-201 graph: 1.8 ms
a member).  Stacked, each operation runs once for all members (``baddbmm`` on ``[members, rows,
channels]``), the members' shared inputs are read once, and the per-member weight slices a
layer-of-parts needs are cut once at load, not per call.

It is the same function as :meth:`SeerNet.forward` with a :class:`~seernet.nn.plan.Plan`, rewritten
over a member axis, for the architecture SeerNet ships with (SynMM aggregation and read-out, GNPB,
the additive read-out); ``tests/seernet/test_ensemble.py`` checks it against each member's own
forward on graphs of every space.  :func:`stackable` says whether a configuration is covered;
others run member by member.  Inference only: no dropout, no gradients.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .additive import TERMS
from .plan import Plan
from .seernet import SeerNet, SeerNetConfig

Tensor = torch.Tensor


def stackable(config: SeerNetConfig) -> bool:
    """Whether :class:`StackedEnsemble` computes this architecture (else: member by member)."""
    return config.synmm_aggregation and config.synmm_readout and config.gnpb and config.additive_readout


class StackedEnsemble:
    """``members`` (one configuration, in eval mode) as one network whose tensors carry a leading member axis."""

    def __init__(self, members: Sequence[SeerNet]) -> None:
        self.config = members[0].config
        if not stackable(self.config) or any(m.config != self.config for m in members):
            raise ValueError("members must share one configuration with SynMM, GNPB and the additive read-out")
        self.size = len(members)
        modules = [dict(m.named_modules()) for m in members]

        def stack(get) -> Tensor:
            return torch.stack([get(m).detach().float() for m in modules]).contiguous()

        self._weight: dict[str, Tensor] = {}  # Linear → [M, in, out] (transposed: x @ W)
        self._bias: dict[str, Tensor | None] = {}  # Linear → [M, 1, out]
        self._norm: dict[str, tuple[Tensor, Tensor, float]] = {}
        for name, module in members[0].named_modules():
            if isinstance(module, nn.Linear):
                self._weight[name] = stack(lambda m, n=name: m[n].weight.t())
                self._bias[name] = stack(lambda m, n=name: m[n].bias)[:, None, :] if module.bias is not None else None
            elif isinstance(module, nn.LayerNorm):
                self._norm[name] = (stack(lambda m, n=name: m[n].weight)[:, None, :],
                                    stack(lambda m, n=name: m[n].bias)[:, None, :], module.eps)
        self._slices: dict[tuple[str, int, int], Tensor] = {}
        width, op_width = self.config.node_features, self.config.op_embedding
        # the node encoder's embedding parts, projected once per vocabulary entry (as SeerNet._encode_nodes)
        first = [m["node_encoder.0"].weight.detach() for m in modules]
        self._op_part = torch.stack([m[""].op_embedding.weight.detach() @ w[:, width:width + op_width].t()
                                     for m, w in zip(modules, first)])
        self._category_part = torch.stack([m[""].category_embedding.weight.detach() @ w[:, width + op_width:].t()
                                           for m, w in zip(modules, first)])
        additive = [m.additive for m in members]
        self._metrics = len(self.config.metrics)
        self._bound = additive[0].bound
        self._base = torch.stack([a.base.detach() for a in additive])[:, None]  # [M, 1, TERMS, K]
        self._constant = torch.stack([a.constant.detach() for a in additive])[:, None]  # [M, 1, K]
        self._log_mean = torch.stack([a.log_mean for a in additive])[:, None]
        self._log_std = torch.stack([a.log_std for a in additive])[:, None]
        self._heads = [f"heads.{m}" for m in self.config.metrics]

    # ------------------------------------------------------------------ layers over the member axis
    def _linear(self, name: str, x: Tensor) -> Tensor:
        """``x``: ``[M, R, in]``, or ``[R, in]`` when every member reads the same rows."""
        weight, bias = self._weight[name], self._bias[name]
        if x.dim() == 2:
            out = torch.matmul(x, weight)
            return out if bias is None else out.add_(bias)
        return torch.bmm(x, weight) if bias is None else torch.baddbmm(bias, x, weight)

    def _slice(self, name: str, start: int, width: int) -> Tensor:
        key = (name, start, width)
        if key not in self._slices:
            self._slices[key] = self._weight[name][:, start:start + width].contiguous()
        return self._slices[key]

    def _parts(self, name: str, parts: Sequence[Tensor], per_graph: Tensor | None = None,
               graph: Tensor | None = None) -> Tensor:
        """``linear(cat([*parts, per_graph[graph]]))`` without the concatenation (``seernet.nn.parts``)."""
        start, out = 0, None
        for part in parts:
            width = part.size(-1)
            weight = self._slice(name, start, width)
            out = torch.baddbmm(self._bias[name], part, weight) if out is None else out.baddbmm_(part, weight)
            start += width
        assert out is not None
        if per_graph is not None:
            assert graph is not None
            out.add_(torch.bmm(per_graph, self._slice(name, start, per_graph.size(-1))).index_select(1, graph))
        return out

    def _mlp(self, name: str, x: Tensor) -> Tensor:
        return self._linear(f"{name}.2", F.silu(self._linear(f"{name}.0", x)))

    def _layer_norm(self, name: str, x: Tensor) -> Tensor:
        """Member by member: torch's fused layer norm takes one weight, and on ``[rows, channels]`` it runs at
        about half the time per element it takes on ``[members, rows, channels]`` (measured: 68 µs for 1,500
        rows, 321 µs for two members' together with the affine part separate)."""
        weight, bias, eps = self._norm[name]
        width = (x.size(-1),)
        return torch.stack([F.layer_norm(x[m], width, weight[m, 0], bias[m, 0], eps) for m in range(self.size)])

    @staticmethod
    def _sum(x: Tensor, index: Tensor, size: int) -> Tensor:
        return x.new_zeros((x.size(0), size, *x.shape[2:])).index_add_(1, index, x)

    @staticmethod
    def _max(x: Tensor, index: Tensor, size: int) -> Tensor:
        """Per-group maximum along the row axis, 0 for an empty group (as ``seernet.pyg.pool_max``), member by
        member on ``[rows, channels]`` slices: torch's ``scatter_reduce_`` along dim 1 of the stacked tensor
        runs ~15× slower than along dim 0."""
        out = x.new_zeros((x.size(0), size, *x.shape[2:]))
        spread = index.view(-1, *([1] * (x.dim() - 2))).expand(x.shape[1:])
        for m in range(x.size(0)):
            out[m].scatter_reduce_(0, spread, x[m], "amax", include_self=False)
        return out

    def _mean(self, x: Tensor, index: Tensor, size: int, count: Tensor | None) -> Tensor:
        if count is None:
            counts = torch.bincount(index, minlength=size).clamp_min_(1).to(x.dtype)
            return self._sum(x, index, size) / counts.view(1, -1, 1)
        w = count.view(1, -1, 1)
        total = x.new_zeros((size, 1)).index_add_(0, index, count.view(-1, 1)).clamp_min(1.0)
        return self._sum(x * w, index, size) / total.view(1, size, 1)

    def _synmm(self, name: str, x: Tensor, index: Tensor, size: int, count: Tensor | None) -> Tensor:
        return self._parts(f"{name}.proj", [self._max(x, index, size), self._mean(x, index, size, count)])

    def _softmax(self, scores: Tensor, index: Tensor, size: int) -> Tensor:
        """Per-group softmax along the row axis (as ``torch_geometric.utils.softmax``)."""
        peak = self._max(scores, index, size)
        out = (scores - peak.index_select(1, index)).exp()
        return out / (self._sum(out, index, size) + 1e-16).index_select(1, index)

    # ------------------------------------------------------------------ the network
    def _block(self, k: int, x: Tensor, e: Tensor, u: Tensor, g: Tensor, rows) -> tuple[Tensor, Tensor]:
        """``GraphNetworkBlock.forward`` (inference) for block ``k``."""
        p = f"blocks.{k}"
        e_prev = e if rows.edge_prev is None else e.index_select(1, rows.edge_prev)
        e_new = self._linear(f"{p}.edge_in", e_prev)  # the sums in place: no temporaries of the edge rows' size
        e_new += self._linear(f"{p}.src_in", x).index_select(1, rows.edge_src)
        e_new += self._linear(f"{p}.global_in", u).index_select(1, rows.edge_graph)
        e_new += self._linear(f"{p}.dst_in", x).index_select(1, rows.edge_dst)
        e_new = self._linear(f"{p}.edge_out.1", F.silu(e_new, inplace=True)).add_(e_prev)
        e_new = self._layer_norm(f"{p}.edge_norm", e_new)
        incoming = e_new if rows.agg_edge is None else e_new.index_select(1, rows.agg_edge)
        aggregated = self._synmm(f"{p}.aggregate", incoming, rows.agg_node, rows.size, None)
        x_prev = x if rows.node_prev is None else x.index_select(1, rows.node_prev)
        context = x_prev + g.index_select(1, rows.node_graph)
        h = self._parts(f"{p}.node_mlp.0", [aggregated, context], u, rows.node_graph)
        h = self._linear(f"{p}.node_mlp.2", F.silu(h, inplace=True))
        return self._layer_norm(f"{p}.node_norm", h.add_(x_prev)), e_new

    @torch.inference_mode()
    def __call__(self, data, plan: Plan) -> Tensor:
        """``[members, graphs, metrics]``: each member's ``SeerNet.forward(data, plan)``."""
        size = plan.num_graphs
        rows = plan.node_rows
        features, ops, categories = ((data.x, data.op, data.category) if rows is None else
                                     (data.x.index_select(0, rows), data.op.index_select(0, rows),
                                      data.category.index_select(0, rows)))
        width = self.config.node_features
        hidden = torch.matmul(features, self._slice("node_encoder.0", 0, width)).add_(self._bias["node_encoder.0"])
        hidden = hidden + self._op_part.index_select(1, ops) + self._category_part.index_select(1, categories)
        x = self._linear("node_encoder.2", F.silu(hidden))
        edges = data.edge_attr if plan.edge_rows is None else data.edge_attr.index_select(0, plan.edge_rows)
        e = self._mlp("edge_encoder", edges)
        u = self._mlp("global_encoder", data.u)
        graph, count = plan.node_graph, plan.node_count
        scores = self._linear("global_node.init_pool.score", x)
        if count is not None:
            scores = scores + torch.log(count).view(1, -1, 1)
        g = self._sum(self._softmax(scores, graph, size) * x, graph, size)
        for k, layer in enumerate(plan.layers):
            x, e = self._block(k, x, e, u, g, layer)
            graph, count = layer.node_graph, layer.node_count
            pooled = self._synmm("global_node.readout", x, graph, size, count)
            g = self._layer_norm("global_node.norm", g + self._mlp("global_node.update", torch.cat([g, pooled], -1)))
        z = self._mlp("trunk", torch.cat([self._synmm("readout", x, graph, size, count), u, g], dim=-1))
        heads = torch.cat([self._linear(name, z) for name in self._heads], dim=-1)
        work = data.work if plan.work_rows is None else data.work.index_select(0, plan.work_rows)
        return heads + self._additive(x, g, graph, size, work, count)

    def _additive(self, x: Tensor, g: Tensor, graph: Tensor, size: int, work: Tensor, count: Tensor | None) -> Tensor:
        """``AdditiveReadout.forward`` over the member axis."""
        adjust = self._bound * torch.tanh(self._linear("additive.adjust.2", F.silu(
            self._parts("additive.adjust.0", [x], g, graph))))
        logs = adjust.view(self.size, -1, TERMS, self._metrics) + self._base
        scale = torch.cat([work, torch.zeros_like(work[:, :1])], dim=-1)
        terms = torch.logsumexp(logs + scale[None, :, :, None], dim=2)
        if count is not None:
            terms = terms + torch.log(count).view(1, -1, 1)
        peak = self._max(terms, graph, size)
        operators = torch.log(self._sum(torch.exp(terms - peak.index_select(1, graph)), graph, size)) + peak
        constant = self._constant + self._bound * torch.tanh(self._linear("additive.constant_adjust", g))
        return (torch.logaddexp(operators, constant) - self._log_mean) / self._log_std


__all__ = ["StackedEnsemble", "stackable"]
