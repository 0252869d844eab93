"""SeerNet, SeerNet-Multi and the baselines on the same splits, in one run anyone can repeat.

Each split's results go to ``<out>/evaluation-<split>.json`` (splits can run
in parallel processes); :func:`write_report` turns all of them into
``<out>/README.md`` tables and PNG plots.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .baselines import GNN_BASELINES, TREE_BASELINES
from .data import Sample, in_holdout, leave_family_out, random_split, with_targets
from .nn import SeerNetConfig
from .operator_scores import breakdown_scores, operator_breakdown_scores
from .operator_trees import enough_profiles, fit_operator_model
from .scores import score
from .train import TrainConfig, fit_ensemble

log = logging.getLogger(__name__)
METHODS = ("seernet", "seernet_multi", "loglinear", "nnmeter_kernel_gbt", "operator_trees", "brpnas_gcn", "dippm_sage")
# SeerNet-Multi without the additive read-out (pooled heads only); without the operator-level loss
# (whole-model labels only, where the dataset has per-operator profiles)
ABLATIONS = ("seernet_multi_pooled", "seernet_multi_no_oploss")
# methods whose per-operator costs are scored against measured kernels (seernet.operator_scores)
SCORED_BY_OPERATOR = ("seernet_multi", "seernet_multi_no_oploss", "operator_trees")


@dataclass
class EvalConfig:
    metrics: tuple[str, ...]
    out: Path
    methods: tuple[str, ...] = METHODS
    train: TrainConfig = field(default_factory=TrainConfig)
    hidden: int = 64
    layers: int = 3
    additive: bool = True  # SeerNet's additive read-out (False: the pooled-heads ablation)
    seed: int = 0
    save_multi_to: Path | None = None  # save the random split's SeerNet-Multi as a predictor (the shipped one)
    guard: Sequence[Sample] = ()  # real architectures: worse there than the predictor in save_multi_to → staged only
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
            net = _net_config(cfg, (metric,))
            values, _ = fit_ensemble(with_targets(train, (metric,)), with_targets(val, (metric,)), net, cfg.train).predict(test)
            predictions[metric] = values[:, 0]
    elif method in ("seernet_multi", *ABLATIONS, *GNN_BASELINES):
        net = _net_config(cfg, cfg.metrics)
        if method == "seernet_multi_pooled":
            net = replace(net, additive_readout=False)
        kwargs = {"factory": GNN_BASELINES[method]} if method in GNN_BASELINES else {}
        train_cfg = _without_pcgrad(cfg.train) if method in GNN_BASELINES else cfg.train
        if method == "seernet_multi" and keep is not None and keep.get("save"):
            train_cfg = replace(train_cfg, ensemble=cfg.multi_ensemble)
        if method == "seernet_multi_no_oploss":
            train_cfg = replace(train_cfg, operator_loss=0.0)
        ensemble = fit_ensemble(with_targets(train, cfg.metrics), with_targets(val, cfg.metrics), net, train_cfg, **kwargs)
        values, _ = ensemble.predict(test)
        predictions = {m: values[:, k] for k, m in enumerate(cfg.metrics)}
        if keep is not None:
            keep["ensemble"] = ensemble
    elif method == "operator_trees":  # inference time only, and only where rows carry operator profiles
        if "infer_time_ms" in cfg.metrics and enough_profiles(train + val):
            model = fit_operator_model(train + val, "infer_time_ms", cfg.seed)
            predictions["infer_time_ms"] = model.predict([s.graph for s in test])
            if keep is not None:
                keep["operators"] = breakdown_scores(test, model.nodes_ms([s.graph for s in test]))
    else:
        baseline = {b.name: b for b in TREE_BASELINES}[method]
        for metric in cfg.metrics:
            predictions[metric] = baseline().fit(train + val, metric).predict(test)
    return predictions, time.monotonic() - started


def _net_config(cfg: EvalConfig, metrics: tuple[str, ...]) -> SeerNetConfig:
    return SeerNetConfig(metrics=metrics, hidden=cfg.hidden, layers=cfg.layers, additive_readout=cfg.additive)


def _without_pcgrad(config: TrainConfig) -> TrainConfig:
    return replace(config, pcgrad=False)


def evaluate_split(name: str, train: list[Sample], val: list[Sample], test: list[Sample], cfg: EvalConfig) -> dict:
    result = {"split": name, "rows": {"train": len(train), "validation": len(val), "test": len(test)},
              "methods": {}, "predictions": {}}
    for method in cfg.methods:
        log.info("[%s] %s", name, method)
        saving = method == "seernet_multi" and name == "random" and cfg.save_multi_to is not None
        keep: dict = {"save": saving}
        predictions, seconds = run_method(method, train, val, test, cfg, keep if saving or method in SCORED_BY_OPERATOR
                                          else None)
        scores = {m: score(p, _truth(test, m)) for m, p in predictions.items()}
        result["methods"][method] = {"fit_seconds": seconds, "scores": scores}
        if "ensemble" in keep and method in SCORED_BY_OPERATOR:
            keep["operators"] = operator_breakdown_scores(keep["ensemble"], test)
        if keep.get("operators") is not None:
            result["methods"][method]["operators"] = keep["operators"]
        result["predictions"][method] = {m: p.tolist() for m, p in predictions.items()}
        if saving:
            from .training_run import ManifestInfo, save_scored

            info = ManifestInfo(cfg.save_multi_to.name, cfg.device_key, split={"kind": "random 2:1:1", "seed": cfg.seed})
            save_scored(keep["ensemble"], _save_target(keep["ensemble"], cfg), info, train, val, test)
    result["truth"] = {m: _truth(test, m).tolist() for m in cfg.metrics}
    result["test_families"] = [s.family for s in test]
    return result


def _save_target(ensemble, cfg: EvalConfig) -> Path:
    """``cfg.save_multi_to``, unless the predictor already there does better on the guard set: then
    the new one goes to ``.staging/`` beside it, so an evaluation never replaces a predictor that
    extrapolates better (the promotion rule of ``perfseer retrain --guard``)."""
    from .predictor import Predictor, PredictorLoadError, mean_mape

    target = cfg.save_multi_to
    if not cfg.guard or not (target / "manifest.json").exists():
        return target
    try:
        current = Predictor.load(target)
    except PredictorLoadError:
        return target
    candidate_mape, current_mape = mean_mape(Predictor.from_ensemble(ensemble), cfg.guard), mean_mape(current, cfg.guard)
    if candidate_mape <= current_mape:
        return target
    staged = target.parent / ".staging" / f"{target.name}-evaluate"
    log.warning("the new SeerNet-Multi is worse on the guard set (%.2f %% > %.2f %% for %s): saved to %s, "
                "%s left in place", candidate_mape, current_mape, current.version, staged, target)
    return staged


def check_methods(methods: Sequence[str]) -> None:
    unknown = sorted(set(methods) - set(METHODS) - set(ABLATIONS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {', '.join([*METHODS, *ABLATIONS])}")


def run_evaluation(samples: list[Sample], splits: Sequence[str], cfg: EvalConfig) -> list[Path]:
    """``splits``: ``random`` (2:1:1 of the rows outside the promotion holdout) and/or ``lofo``
    (each family held out in turn) or ``lofo:<family>``."""
    check_methods(cfg.methods)
    cfg.out.mkdir(parents=True, exist_ok=True)
    written = []
    families = sorted({s.family for s in samples})
    for split in splits:
        if split == "random":
            # the promotion holdout stays out, so the predictor saved from this split can later be
            # compared with retrained candidates on rows neither has seen
            parts = {"random": random_split([s for s in samples if not in_holdout(s.key)], cfg.seed)}
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
