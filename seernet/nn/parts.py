"""A linear layer applied to a concatenation, without building the concatenation."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def linear_of_parts(layer: nn.Linear, parts: Sequence[torch.Tensor], per_graph: torch.Tensor | None = None,
                    batch: torch.Tensor | None = None) -> torch.Tensor:
    r"""``layer(cat([*parts, per_graph[batch]], -1))``, computed as :math:`\sum_k W_k x_k + (W_g u)[batch] + b`.

    Why: the concatenated input of a node update is ``N × 3h`` floats written and read once more
    than needed, and the per-graph part repeats one row per node; projecting it per graph first
    and gathering the result costs ``G`` rows of matmul instead of ``N``.  Same parameters (one
    ``nn.Linear``, so checkpoints are unchanged), same values up to float rounding.
    """
    in_place = torch.is_inference_mode_enabled() or not torch.is_grad_enabled()  # no graph to keep: reuse `out`
    start, out = 0, None
    for part in parts:
        width = part.size(-1)
        weight = layer.weight[:, start:start + width].t()
        if out is None:
            out = torch.addmm(layer.bias, part, weight)
        else:
            out = out.addmm_(part, weight) if in_place else torch.addmm(out, part, weight)
        start += width
    if per_graph is not None:
        assert batch is not None and out is not None
        projected = (per_graph @ layer.weight[:, start:start + per_graph.size(-1)].t()).index_select(0, batch)
        out = out.add_(projected) if in_place else out + projected
    assert out is not None
    return out
