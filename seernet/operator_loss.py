"""The operator-level loss: predicted costs of a measured kernel's nodes must sum to its measured time.

Whole-model labels say how much a model costs; a profile says where (tens to hundreds of kernel labels per
measured model).  The additive read-out already gives every node a cost in log ms
(``AdditiveReadout.node_terms``); for each kernel group the log of the summed costs of its nodes is compared
with the log of its measured median, in the same normalised log units and smooth-L1 as the whole-model loss
(divided by the metric's log-space std).  A model's groups are weighted by their share of its labelled time,
so each profiled model adds one unit of loss, as its whole-model label does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .pyg import pool_logsumexp

METRIC = "infer_time_ms"  # what the profiles measure: the task the operator loss joins, the metric it scores
BETA = 0.05  # the whole-model loss's smooth-L1 beta (seernet.train._masked_losses)


def operator_loss(terms: torch.Tensor, batch, log_std: float) -> torch.Tensor:
    """``terms``: ``[num_nodes]`` log-ms costs of one metric for every node of ``batch`` (collated
    ``seernet.pyg.to_data(..., with_operators=True)`` items).  Mean over the batch's profiled graphs; 0 (with
    a gradient path) when none is profiled."""
    counts = batch.group_count
    total = int(counts.sum())
    profiled = int((counts > 0).sum())
    if total == 0:
        return terms.sum() * 0.0
    graph_of_node = batch.batch if getattr(batch, "batch", None) is not None else torch.zeros_like(batch.node_group)
    offsets = torch.cumsum(counts, 0) - counts
    labelled = batch.node_group >= 0
    group = batch.node_group[labelled] + offsets[graph_of_node[labelled]]
    predicted = pool_logsumexp(terms[labelled], group, total)
    error = (predicted - torch.log(batch.group_ms)) / log_std
    per_group = F.smooth_l1_loss(error, torch.zeros_like(error), beta=BETA, reduction="none")
    return (per_group * batch.group_w).sum() / profiled
