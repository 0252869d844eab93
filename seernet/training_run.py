"""Train, score on the test split, save with a manifest: the one path every predictor on disk comes from.

``perfseer train``, ``fit``, ``retrain`` and ``evaluate`` all end here, so every
saved predictor carries the same manifest fields: its test scores, the hash of
the rows it saw, its split and row counts (``ListPredictors`` shows them).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import Sample, dataset_hash, in_holdout, random_split, with_targets
from .nn import SeerNetConfig
from .predictor import save_predictor
from .scores import score
from .train import TrainConfig, TrainedEnsemble, fit_ensemble

log = logging.getLogger(__name__)


@dataclass
class ManifestInfo:
    """What a saved predictor's manifest says beside its weights: the one definition of those fields."""

    name: str
    device_key: str
    split: dict = field(default_factory=dict)  # {"kind": ..., "seed": ...}
    source: dict = field(default_factory=dict)  # where the rows came from (dataset path, CSV, devices …)
    extra: dict = field(default_factory=dict)

    def manifest_fields(self, train: Sequence[Sample], val: Sequence[Sample], test: Sequence[Sample],
                        metrics: Sequence[str], scores: dict) -> dict:
        rows = [*train, *val, *test]
        return {"dataset_hash": dataset_hash(rows, metrics), "scores": scores, "split": self.split,
                "rows": {"train": len(train), "validation": len(val), "test": len(test)},
                "families": sorted({s.family for s in rows}), **self.source, **self.extra}


def test_scores(ensemble: TrainedEnsemble, test: Sequence[Sample]) -> dict[str, dict]:
    if not test:
        return {}
    values, _ = ensemble.predict(test)
    metrics = ensemble.net_config.metrics
    truth = np.array([s.target_vector(metrics) for s in test])
    return {m: score(values[:, k], truth[:, k]) for k, m in enumerate(metrics)}


def save_scored(ensemble: TrainedEnsemble, out: Path, info: ManifestInfo, train: Sequence[Sample],
                val: Sequence[Sample], test: Sequence[Sample]) -> dict:
    """Score ``ensemble`` on ``test`` and save it with its manifest; returns the scores."""
    scores = {"validation": [r["best_val_mape"] for r in ensemble.reports], "test": test_scores(ensemble, test)}
    save_predictor(ensemble, out, info.name, info.device_key,
                   extra=info.manifest_fields(train, val, test, ensemble.net_config.metrics, scores))
    return scores


def train_score_save(train: Sequence[Sample], val: Sequence[Sample], test: Sequence[Sample], net: SeerNetConfig,
                     config: TrainConfig, out: Path | None, info: ManifestInfo,
                     **fit_kwargs: object) -> tuple[TrainedEnsemble, dict]:
    """Fit an ensemble, score it on ``test``, save it to ``out`` (when given) with its manifest."""
    ensemble = fit_ensemble(list(train), list(val), net, config, **fit_kwargs)
    if out is None:
        return ensemble, {"validation": [r["best_val_mape"] for r in ensemble.reports],
                          "test": test_scores(ensemble, test)}
    return ensemble, save_scored(ensemble, out, info, train, val, test)


@dataclass
class TrainRequest:
    out: Path
    metrics: tuple[str, ...]
    name: str = "cpu-seernet-multi"
    hidden: int = 64
    layers: int = 3
    additive: bool = True
    train: TrainConfig | None = None
    split_seed: int = 0
    dataset: str = ""  # where the rows came from, for the manifest


def run_training(request: TrainRequest, samples: Sequence[Sample], device_keys: Sequence[str]) -> dict:
    """``perfseer train``: the dataset's rows (outside the promotion holdout) → random 2:1:1 → saved predictor."""
    samples = [s for s in with_targets(samples, request.metrics) if not in_holdout(s.key)]
    if len(samples) < 8:
        raise ValueError(f"{len(samples)} usable rows in {request.dataset} for {request.metrics}: need at least 8")
    train, val, test = random_split(samples, request.split_seed)
    net = SeerNetConfig(metrics=request.metrics, hidden=request.hidden, layers=request.layers,
                        additive_readout=request.additive)
    info = ManifestInfo(request.name, device_keys[0] if device_keys else "",
                        split={"kind": "random 2:1:1", "seed": request.split_seed},
                        source={"dataset": request.dataset, "devices_in_dataset": list(device_keys)})
    _, scores = train_score_save(train, val, test, net, request.train or TrainConfig(), request.out, info)
    return scores
