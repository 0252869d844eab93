"""SeerNet, SeerNet-Multi and the baselines on the same splits, in one run anyone can repeat.

Each split's results go to ``<out>/evaluation-<split>.json`` (splits can run
in parallel processes); :func:`write_report` turns all of them into
``<out>/README.md`` tables and PNG plots.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .baselines import GNN_BASELINES, TREE_BASELINES
from .data import Sample, leave_family_out, random_split, with_targets
from .nn import SeerNetConfig
from .scores import score
from .train import TrainConfig, fit_ensemble

log = logging.getLogger(__name__)
METHODS = ("seernet", "seernet_multi", "loglinear", "nnmeter_kernel_gbt", "brpnas_gcn", "dippm_sage")


@dataclass
class EvalConfig:
    metrics: tuple[str, ...]
    out: Path
    methods: tuple[str, ...] = METHODS
    train: TrainConfig = field(default_factory=TrainConfig)
    hidden: int = 64
    layers: int = 3
    seed: int = 0
    save_multi_to: Path | None = None  # save the random split's SeerNet-Multi as a predictor (the shipped one)
    multi_ensemble: int = 1
    device_key: str = ""


def _truth(samples: Sequence[Sample], metric: str) -> np.ndarray:
    return np.array([s.targets.get(metric, np.nan) for s in samples], dtype=float)


def run_method(method: str, train: list[Sample], val: list[Sample], test: list[Sample], cfg: EvalConfig,
               keep: dict | None = None) -> tuple[dict[str, np.ndarray], float]:
    """Predictions on ``test`` per metric, and the seconds it took to fit (``keep`` receives the ensemble)."""
    started = time.monotonic()
    predictions: dict[str, np.ndarray] = {}
    if method == "seernet":
        for metric in cfg.metrics:
            net = SeerNetConfig(metrics=(metric,), hidden=cfg.hidden, layers=cfg.layers)
            values, _ = fit_ensemble(with_targets(train, (metric,)), with_targets(val, (metric,)), net, cfg.train).predict(test)
            predictions[metric] = values[:, 0]
    elif method in ("seernet_multi", *GNN_BASELINES):
        net = SeerNetConfig(metrics=cfg.metrics, hidden=cfg.hidden, layers=cfg.layers)
        kwargs = {"factory": GNN_BASELINES[method]} if method in GNN_BASELINES else {}
        train_cfg = cfg.train if method == "seernet_multi" else _without_pcgrad(cfg.train)
        if method == "seernet_multi" and keep is not None:
            from dataclasses import replace

            train_cfg = replace(train_cfg, ensemble=cfg.multi_ensemble)
        ensemble = fit_ensemble(with_targets(train, cfg.metrics), with_targets(val, cfg.metrics), net, train_cfg, **kwargs)
        values, _ = ensemble.predict(test)
        predictions = {m: values[:, k] for k, m in enumerate(cfg.metrics)}
        if keep is not None:
            keep["ensemble"] = ensemble
    else:
        baseline = {b.name: b for b in TREE_BASELINES}[method]
        for metric in cfg.metrics:
            predictions[metric] = baseline().fit(train + val, metric).predict(test)
    return predictions, time.monotonic() - started


def _without_pcgrad(config: TrainConfig) -> TrainConfig:
    from dataclasses import replace

    return replace(config, pcgrad=False)


def evaluate_split(name: str, train: list[Sample], val: list[Sample], test: list[Sample], cfg: EvalConfig) -> dict:
    result = {"split": name, "rows": {"train": len(train), "validation": len(val), "test": len(test)},
              "methods": {}, "predictions": {}}
    for method in cfg.methods:
        log.info("[%s] %s", name, method)
        keep: dict | None = {} if (method == "seernet_multi" and name == "random" and cfg.save_multi_to) else None
        predictions, seconds = run_method(method, train, val, test, cfg, keep)
        scores = {m: score(p, _truth(test, m)) for m, p in predictions.items()}
        result["methods"][method] = {"fit_seconds": seconds, "scores": scores}
        result["predictions"][method] = {m: p.tolist() for m, p in predictions.items()}
        if keep:
            from .data import dataset_hash
            from .predictor import save_predictor

            save_predictor(keep["ensemble"], cfg.save_multi_to, cfg.save_multi_to.name, cfg.device_key, extra={
                "scores": {"test": scores}, "split": {"kind": "random 2:1:1", "seed": cfg.seed},
                "rows": result["rows"], "dataset_hash": dataset_hash(train + val + test, cfg.metrics),
                "families": sorted({s.family for s in train})})
    result["truth"] = {m: _truth(test, m).tolist() for m in cfg.metrics}
    result["test_families"] = [s.family for s in test]
    return result


def run_evaluation(samples: list[Sample], splits: Sequence[str], cfg: EvalConfig) -> list[Path]:
    """``splits``: ``random`` (2:1:1) and/or ``lofo`` (each family held out in turn) or ``lofo:<family>``."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    written = []
    families = sorted({s.family for s in samples})
    for split in splits:
        if split == "random":
            parts = {"random": random_split(samples, cfg.seed)}
        elif split == "lofo":
            parts = {f"lofo-{f}": leave_family_out(samples, f, cfg.seed) for f in families}
        elif split.startswith("lofo:"):
            family = split.split(":", 1)[1]
            parts = {f"lofo-{family}": leave_family_out(samples, family, cfg.seed)}
        else:
            raise ValueError(f"unknown split {split!r}; use random, lofo or lofo:<family>")
        for name, (train, val, test) in parts.items():
            result = evaluate_split(name, train, val, test, cfg)
            path = cfg.out / f"evaluation-{name}.json"
            path.write_text(json.dumps(result) + "\n")
            written.append(path)
    return written
