"""GNPB: the Global-Node Perspective Boost."""
from __future__ import annotations

import torch
from torch import nn

from ..pyg import pool_sum, segment_softmax
from .synmm import SynMM


class AttentionPooling(nn.Module):
    """Softmax-weighted sum of node states per graph: the global node's first state."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Linear(channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.score.reset_parameters()

    def forward(self, x: torch.Tensor, batch: torch.Tensor, size: int, count: torch.Tensor | None = None) -> torch.Tensor:
        """``count``: nodes each row stands for; its log is added to the score, the same softmax over the nodes."""
        scores = self.score(x)
        if count is not None:
            scores = scores + torch.log(count).unsqueeze(-1)
        return pool_sum(segment_softmax(scores, batch, size) * x, batch, size)


class GlobalNode(nn.Module):
    """A learned node that sees the whole graph.

    It is initialised by attention pooling over the nodes, added into every
    node's update (so each operator is judged in the context of the model it
    is in), and updated from the new node states after each block.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.init_pool = AttentionPooling(channels)
        self.readout = SynMM(channels)
        self.update = nn.Sequential(nn.Linear(2 * channels, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.norm = nn.LayerNorm(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.init_pool.reset_parameters()
        self.readout.reset_parameters()
        for layer in self.update:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self.norm.reset_parameters()

    def initial(self, x: torch.Tensor, batch: torch.Tensor, size: int, count: torch.Tensor | None = None) -> torch.Tensor:
        return self.init_pool(x, batch, size, count)

    def forward(self, g: torch.Tensor, x: torch.Tensor, batch: torch.Tensor, size: int,
                count: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(g + self.update(torch.cat([g, self.readout(x, batch, size, count)], dim=-1)))
