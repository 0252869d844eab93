"""SynMM: synergistic max-mean aggregation."""
from __future__ import annotations

import torch
from torch import nn

from ..pyg import pool_max, pool_mean
from .parts import linear_of_parts


class SynMM(nn.Module):
    r"""Aggregate a set of vectors per group by max *and* mean, fused by a learned projection.

    .. math:: \mathrm{SynMM}(\{x_i\}) = W\,[\max_i x_i \,\Vert\, \tfrac{1}{n}\textstyle\sum_i x_i] + b

    Why both: a model's latency is driven by its few heaviest operators (max)
    *and* by how much work is spread over all of them (mean); either alone loses
    half of that.  Used for the graph read-out and for edge → node aggregation.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.proj = nn.Linear(2 * in_channels, self.out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()

    def forward(self, x: torch.Tensor, index: torch.Tensor, size: int, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``weight``: how many vectors each row stands for (the mean counts it that often; the max needs not)."""
        return linear_of_parts(self.proj, [pool_max(x, index, size), pool_mean(x, index, size, weight)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels})"


class MeanAggregation(nn.Module):
    """The plain alternative, for ablations: mean, then a projection of the same size as SynMM's."""

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels or in_channels)

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()

    def forward(self, x: torch.Tensor, index: torch.Tensor, size: int, weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(pool_mean(x, index, size, weight))
