"""How well a predictor says where the time goes: predicted vs measured kernel-group times on profiled rows.

Whole-model MAPE says how much; this says where.  For each profiled test model, the additive read-out's
per-node costs (mean over the ensemble's members, in ms) are summed per measured kernel group and compared
with the group's measured time: the error of each kernel weighted by its share of the model's labelled time
(what a user reading ``--explain`` relies on), the median error over kernels, and how well the kernels are
ranked within each model (median Spearman over models with at least three kernels).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .data import Sample
from .operator_loss import METRIC
from .pyg import collate, to_data
from .scores import score



def operator_breakdown_scores(ensemble, samples: Sequence[Sample], chunk: int = 64) -> dict | None:
    """A SeerNet ensemble's breakdown scores; None when nothing can be scored (no profiled sample, no additive
    read-out, no inference time)."""
    profiled = [s for s in samples if s.operators is not None]
    metrics = tuple(ensemble.net_config.metrics)
    if not profiled or not ensemble.net_config.additive_readout or METRIC not in metrics:
        return None
    index = metrics.index(METRIC)
    per_sample = []
    for start in range(0, len(profiled), chunk):
        part = profiled[start:start + chunk]
        batch = collate([to_data(s.graph, ensemble.features) for s in part])
        with torch.no_grad():
            node_ms = np.mean([torch.exp(m.operator_costs(batch)[:, index]).numpy() for m in ensemble.members], axis=0)
        per_sample += np.split(node_ms, np.cumsum([s.graph.num_nodes for s in part])[:-1])
    return breakdown_scores(profiled, per_sample)


def breakdown_scores(samples: Sequence[Sample], node_ms: Sequence[np.ndarray]) -> dict | None:
    """Scores of predicted per-node times (``node_ms[i]`` for ``samples[i]``, in ms) against each profiled
    sample's measured kernel groups — whichever model predicted them."""
    errors, weights, rankings = [], [], []
    for s, ms in zip(samples, node_ms):
        labels = s.operators
        if labels is None:
            continue
        mine = labels.node_group >= 0
        predicted = np.bincount(labels.node_group[mine], weights=ms[mine], minlength=labels.groups)
        errors.append(np.abs(predicted - labels.group_ms) / labels.group_ms)
        weights.append(labels.weights())
        rho = score(predicted, labels.group_ms).get("spearman") if labels.groups >= 3 else None
        if rho is not None:
            rankings.append(rho)
    if not errors:
        return None
    e, w = np.concatenate(errors), np.concatenate(weights)
    return {"models": len(errors), "kernels": int(e.size), "weighted_mape": float(100 * np.sum(w * e) / np.sum(w)),
            "median_ape": float(100 * np.median(e)),
            "within_model_spearman": float(np.median(rankings)) if rankings else None}
