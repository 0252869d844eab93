"""``perfseer train``: dataset → split → trained ensemble → predictor directory with scores."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import Sample, dataset_hash, in_holdout, random_split, samples_from_store, with_targets
from .nn import SeerNetConfig
from .predictor import save_predictor
from .scores import score
from .train import TrainConfig, TrainedEnsemble, fit_ensemble

log = logging.getLogger(__name__)


@dataclass
class TrainRequest:
    dataset: Path
    out: Path
    metrics: tuple[str, ...]
    name: str = "cpu-seernet-multi"
    hidden: int = 64
    layers: int = 3
    additive: bool = True
    train: TrainConfig | None = None
    split_seed: int = 0


def test_scores(ensemble: TrainedEnsemble, test: Sequence[Sample]) -> dict[str, dict]:
    if not test:
        return {}
    values, _ = ensemble.predict(test)
    metrics = ensemble.net_config.metrics
    truth = np.array([s.target_vector(metrics) for s in test])
    return {m: score(values[:, k], truth[:, k]) for k, m in enumerate(metrics)}


def run_training(request: TrainRequest) -> dict:
    from profiler_worker.store import DatasetStore

    samples = samples_from_store(request.dataset, request.metrics)
    samples = [s for s in with_targets(samples, request.metrics) if not in_holdout(s.key)]
    if len(samples) < 8:
        raise ValueError(f"{len(samples)} usable rows in {request.dataset} for {request.metrics}: need at least 8")
    train, val, test = random_split(samples, request.split_seed)
    net = SeerNetConfig(metrics=request.metrics, hidden=request.hidden, layers=request.layers,
                        additive_readout=request.additive)
    ensemble = fit_ensemble(train, val, net, request.train or TrainConfig())
    scores = {"validation": [r["best_val_mape"] for r in ensemble.reports], "test": test_scores(ensemble, test)}
    device_keys = DatasetStore(request.dataset).device_keys()
    device_key = device_keys[0] if device_keys else ""
    save_predictor(ensemble, request.out, request.name, device_key, extra={
        "dataset": str(request.dataset), "dataset_hash": dataset_hash(samples, request.metrics),
        "rows": {"train": len(train), "validation": len(val), "test": len(test)},
        "split": {"kind": "random 2:1:1", "seed": request.split_seed}, "scores": scores,
        "families": sorted({s.family for s in samples}), "devices_in_dataset": device_keys})
    return scores
