"""Additive read-out: a model's cost as the sum of its operators' costs, each roofline-shaped."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..pyg import pool_logsumexp
from .parts import linear_of_parts

TERMS = 3  # per operator: compute (× FLOPs), traffic (× bytes), fixed overhead


class AdditiveReadout(nn.Module):
    r"""Per-operator cost, summed per graph, returned in the targets' normalised log space.

    Each operator *i* costs, per metric,

    .. math:: c_i = e^{\alpha + r\tanh a_i}\,\mathrm{FLOPs}_i + e^{\beta + r\tanh b_i}\,\mathrm{bytes}_i
              + e^{\gamma + r\tanh c_i},
              \qquad \hat y = \frac{\log \big(\sum_i c_i + e^{\delta + r\tanh d}\big) - \mu}{\sigma}

    where :math:`\alpha, \beta, \gamma, \delta` are learned per metric (inverse throughput,
    inverse bandwidth, launch overhead, the model-independent base: a runtime's own memory),
    :math:`a_i, b_i, c_i` come from the operator's final node state and the global node, and
    :math:`d` from the global node alone, each bounded to ±r log units.

    Why: a model's latency is, to first order, the sum of its kernels' latencies (nn-Meter's
    insight), and a kernel's latency grows with its work; training memory is the sum of what
    it keeps.  This extrapolates to model families and sizes never seen in training (a
    3-layer MLP at 0.02 ms) where a pooled-vector read-out, which only interpolates, does not;
    the bound keeps one unfamiliar operator from dominating the sum.  ``μ, σ`` are the target
    normaliser's statistics, fixed inputs rather than weights, so a transferred network
    re-targets them without touching its state dict.
    """

    def __init__(self, channels: int, metrics: Sequence[str], log_mean: Sequence[float], log_std: Sequence[float],
                 work_scale: Sequence[float] = (0.0, 0.0, 0.0), bound: float = 3.0) -> None:
        super().__init__()
        self.metrics = tuple(metrics)
        if len(log_mean) != len(self.metrics) or len(log_std) != len(self.metrics):
            raise ValueError("the additive read-out needs one target mean and std per metric")
        self.bound = bound
        self.adjust = nn.Sequential(nn.Linear(2 * channels, channels), nn.SiLU(),
                                    nn.Linear(channels, TERMS * len(self.metrics)))
        self.base = nn.Parameter(torch.zeros(TERMS, len(self.metrics)))
        self.constant_adjust = nn.Linear(channels, len(self.metrics))
        self.constant = nn.Parameter(torch.zeros(len(self.metrics)))
        self.register_buffer("log_mean", torch.tensor(list(log_mean), dtype=torch.float32), persistent=False)
        self.register_buffer("log_std", torch.tensor(list(log_std), dtype=torch.float32), persistent=False)
        self.register_buffer("work_scale", torch.tensor(list(work_scale), dtype=torch.float32), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.adjust:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self.constant_adjust.reset_parameters()
        with torch.no_grad():  # the four terms start equal, summing to the typical model's target
            self.base.copy_(self.log_mean[None, :] - self.work_scale[:, None] - math.log(TERMS + 1))
            self.constant.copy_(self.log_mean - math.log(TERMS + 1))

    def node_terms(self, x: torch.Tensor, g: torch.Tensor, batch: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
        """``[num_nodes, metrics]``: each operator's cost in log units (log ms, log MB)."""
        first, act, last = self.adjust  # adjust([x ‖ g[batch]]), never concatenated
        adjust = self.bound * torch.tanh(last(act(linear_of_parts(first, [x], g, batch))))
        logs = adjust.view(-1, TERMS, len(self.metrics)) + self.base
        scale = torch.cat([work, torch.zeros_like(work[:, :1])], dim=-1)  # log FLOPs, log bytes, log 1
        return torch.logsumexp(logs + scale[:, :, None], dim=1)

    def forward(self, x: torch.Tensor, g: torch.Tensor, batch: torch.Tensor, size: int,
                work: torch.Tensor, count: torch.Tensor | None = None) -> torch.Tensor:
        """``count``: operators each row of ``x`` stands for (its term is summed that many times)."""
        terms = self.node_terms(x, g, batch, work)
        if count is not None:
            terms = terms + torch.log(count).unsqueeze(-1)
        operators = pool_logsumexp(terms, batch, size)
        constant = self.constant + self.bound * torch.tanh(self.constant_adjust(g))
        total = torch.logaddexp(operators, constant)
        return (total - self.log_mean) / self.log_std

    @staticmethod
    def metric_slice(name: str, tensor: torch.Tensor, metrics: int, index: int) -> torch.Tensor:
        """One metric's part of a state-dict entry of this layer (for transfer to a one-metric network)."""
        if name == "base":
            return tensor[:, index:index + 1]
        if name in ("constant", "constant_adjust.weight", "constant_adjust.bias"):
            return tensor[index:index + 1]
        if name.startswith("adjust.2."):  # the output layer: rows are (term, metric)
            return tensor.view(TERMS, metrics, *tensor.shape[1:])[:, index].reshape(TERMS, *tensor.shape[1:])
        return tensor
