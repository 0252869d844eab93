"""``perfseer fit``: a predictor for a new device from a CSV of your own measurements.

Rows name a model by ONNX path (column ``onnx``, relative to the CSV) or a
NAS-Bench-201 arch string (``arch_str``), with an optional ``batch_size``; the
target column holds the measured value.  With ``pretrained`` the network starts
from a trained predictor (its feature normaliser and the weights of its first
head): a new device then needs tens of measurements, not thousands.

``fit`` never ships a predictor that ranks worse than a simple model: it also
fits ridge and gradient-boosted trees on per-operator-type counts and costs
(``seernet.tabular``; for NAS-Bench-201 arch rows also on the cell's edge
operations, which the ONNX graph does not fully show) and SeerNet from scratch
(and from ``pretrained``), and ``pretrained`` itself through one fitted line in log
space (``seernet.rescale``: often all a new CPU needs), and, where rows carry per-operator profiles, operator
trees (``seernet.operator_trees``); scores all of them on the same validation rows by Spearman (then MAPE), and
ships the best (or ``prefer``, unless another ranks clearly better); the output and the manifest say which,
with every score.
"""
from __future__ import annotations

import csv
import logging
import random
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import Sample
from .graph import build_graph
from .graph_cache import graph_for
from .nn import SeerNetConfig
from .nn.additive import AdditiveReadout
from .predictor import OperatorPredictor, Predictor, TabularPredictor, network_of
from .rescale import RescaledPredictor, fit_rescaled
from .scores import score
from .spaces import ModelConfig
from .spaces.nasbench201 import parse_arch_str
from .operator_trees import OperatorModel, enough_profiles, fit_operator_model, save_operator_model
from .tabular import fit_tabular, save_tabular
from .train import TrainConfig, TrainedEnsemble, fit_ensemble
from .training_run import ManifestInfo, save_scored

FIT_METHODS: tuple[str, ...] = ("seernet", "seernet_pretrained", "pretrained_rescaled", "operator_trees", "gbt",
                                "ridge", "gbt_edges", "ridge_edges")

log = logging.getLogger(__name__)
# Spearman by which another candidate must beat the preferred one.  Why a preference at all: validation rows
# come from the spaces calibrate draws from, where candidates rank within a few hundredths of each other and
# the order says nothing about real architectures.  Two `perfseer bench calibrate` runs (Intel Xeon, budgets
# 2, 5 and 10 minutes; bench/results/calibrate_*operator_trees.json): operator trees fitted on the rows gave
# 10.8–16.9 % MAPE on 162 real architectures in all six budgets, what validation chose 12.0–22.5 % (a
# fine-tuned SeerNet with validation Spearman 0.998 against the trees' 0.988: 22.5 % against 12.4 %).
# 0.05 is a few standard errors of a Spearman on calibrate's 15–30 validation rows.
PREFER_MARGIN = 0.05


@dataclass
class FitRequest:
    measurements: Path
    target: str
    out: Path | None = None
    space: str | None = None
    pretrained: Path | None = None
    train: TrainConfig | None = None
    val_fraction: float = 0.2
    seed: int = 0
    base: Path | None = None  # a SeerNet predictor that serves the metrics an operator-tree winner does not learn
    prefer: str | None = None  # this method wins unless another ranks validation rows better by PREFER_MARGIN
    # profiled rows of other devices: operator trees learn operator shapes from them too (seernet.operator_trees)
    auxiliary: Sequence[Sample] = ()


def samples_from_csv(path: Path, target: str, space: str | None = None) -> list[Sample]:
    """Rows → samples; a row whose model cannot be built is an error naming the row."""
    if not path.is_file():
        raise ValueError(f"{path} is not a CSV file ({'a directory' if path.is_dir() else 'no such file'})")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows")
    if target not in rows[0]:
        raise ValueError(f"{path} has no column {target!r}; columns: {list(rows[0])}")
    samples = []
    for line, row in enumerate(rows, start=2):
        try:
            batch = int(row.get("batch_size") or 1)
        except ValueError:
            raise ValueError(f"{path}:{line}: batch_size={row['batch_size']!r} is not an integer") from None
        try:
            value = float(row[target])
        except ValueError:
            raise ValueError(f"{path}:{line}: {target}={row[target]!r} is not a number") from None
        if value <= 0:
            raise ValueError(f"{path}:{line}: {target} must be positive, got {value}")
        if row.get("arch_str") and space in (None, "nasbench201"):
            parse_arch_str(row["arch_str"])
            config = ModelConfig("nasbench201", {"arch_str": row["arch_str"]}, batch,
                                 int(row.get("input_size") or 32))
            graph, key = graph_for(config), config.config_id
        elif row.get("onnx"):
            onnx_path = Path(row["onnx"])
            onnx_path = onnx_path if onnx_path.is_absolute() else path.parent / onnx_path
            if not onnx_path.is_file():
                raise ValueError(f"{path}:{line}: onnx path {onnx_path} is not a file")
            graph, key = build_graph(onnx_path, batch_size=batch), f"{onnx_path}:{batch}"
        else:
            raise ValueError(f"{path}:{line}: needs an 'onnx' path or an 'arch_str'")
        samples.append(Sample(key, space or "csv", graph, {target: value}))
    return samples


def _transfer_state(pretrained: Predictor, net: SeerNetConfig) -> dict:
    """The pretrained weights renamed for a one-head network: trunk as is, the head of the same metric (else the
    first) and its row of the additive read-out's output layer → the new metric's."""
    source = pretrained.members[0].state_dict()
    heads = list(getattr(pretrained, "network_metrics", pretrained.metrics))
    index = heads.index(net.metrics[0]) if net.metrics[0] in heads else 0
    state = {}
    for name, tensor in source.items():
        if name.startswith("heads."):
            if name.startswith(f"heads.{heads[index]}."):
                state[name.replace(f"heads.{heads[index]}.", f"heads.{net.metrics[0]}.")] = tensor.clone()
            continue
        if name.startswith("additive."):
            tensor = AdditiveReadout.metric_slice(name.removeprefix("additive."), tensor, len(heads), index)
        state[name] = tensor.clone()
    return state


def split_for_fit(samples: list[Sample], request: FitRequest) -> tuple[list[Sample], list[Sample]]:
    """The train/validation split every candidate of ``request`` is fitted and scored on (and saved with)."""
    order = list(samples)
    random.Random(request.seed).shuffle(order)
    n_val = max(2, int(len(order) * request.val_fraction))
    return order[n_val:], order[:n_val]


def _load_pretrained(path: Path) -> Predictor:
    """``path`` loaded once per fit, not once per candidate that starts from it (keyed by the manifest's
    modification time, so a predictor rewritten in place is read again)."""
    manifest = Path(path) / "manifest.json"
    stamp = manifest.stat().st_mtime_ns if manifest.exists() else -1
    return _load_cached(Path(path).resolve(), stamp)


@lru_cache(maxsize=2)
def _load_cached(path: Path, stamp: int) -> Predictor:
    return Predictor.load(path)


def _pretrained_network(path: Path) -> Predictor:
    """The SeerNet to start from: ``path`` itself, or the network an operator predictor carries as its base."""
    source = _load_pretrained(path)
    network = network_of(source)
    if network is None:
        kind = "a tabular predictor" if isinstance(source, TabularPredictor) else \
            "an operator predictor without a SeerNet base"
        raise ValueError(f"{path} is {kind}; --pretrained needs a SeerNet predictor")
    return network


def _pretrained_operators(path: Path | None) -> OperatorModel | None:
    """The operator trees of ``path`` when it is an operator predictor: what calibrated trees start from."""
    if path is None:
        return None
    source = _load_pretrained(path)
    return source.model if isinstance(source, OperatorPredictor) else None


def fit_seernet(train: list[Sample], val: list[Sample], target: str, request: FitRequest,
                pretrained: Path | None) -> TrainedEnsemble:
    """SeerNet for one target, from scratch or from a pretrained predictor's trunk and first head."""
    config = request.train or TrainConfig(epochs=150, ensemble=2, patience=20, progress=False)
    features, init_states = None, None
    if pretrained:
        source = _pretrained_network(pretrained)
        net = SeerNetConfig(**{**source.members[0].config.to_dict(), "metrics": (target,)})
        features = source.features
        init_states = [_transfer_state(source, net)]
        config = replace(config, lr=config.lr / 4)
    else:
        net = SeerNetConfig(metrics=(target,))
    return fit_ensemble(train, val, net, config, features=features, init_states=init_states)


def fit_samples(samples: list[Sample], target: str, request: FitRequest) -> TrainedEnsemble:
    """SeerNet only (transfer when ``request.pretrained``): the network half of :func:`select_and_fit`."""
    if len(samples) < 4:
        raise ValueError(f"need at least 4 measured rows to fit, got {len(samples)}")
    train, val = split_for_fit(samples, request)
    return fit_seernet(train, val, target, request, request.pretrained)


@dataclass
class Candidate:
    name: str
    model: object  # TrainedEnsemble or TabularModel
    validation: dict  # score() on the validation rows

    def predict(self, samples: Sequence[Sample]) -> np.ndarray:
        """The candidate's predicted target for each sample, whichever kind of model it is."""
        if isinstance(self.model, TrainedEnsemble):
            return self.model.predict(list(samples))[0][:, 0]
        if isinstance(self.model, RescaledPredictor):
            return self.model.predict(samples)
        return self.model.predict([s.graph for s in samples])

    @property
    def rank_key(self) -> tuple[float, float]:
        """Higher Spearman first; within 0.002 of each other, lower MAPE (the tie-break a user would make)."""
        return (round(self.validation.get("spearman", -1.0) / 0.002), -self.validation.get("mape", float("inf")))


def _applies(method: str, samples: Sequence[Sample], target: str, request: FitRequest) -> bool:
    """Transfer needs a pretrained predictor; edge features need every row to be an arch string; operator
    trees need inference rows with per-operator profiles."""
    if "pretrained" in method:
        return request.pretrained is not None
    if method.endswith("_edges"):
        return all(s.graph.arch_str for s in samples)
    if method == "operator_trees":
        return target == "infer_time_ms" and enough_profiles(samples)
    return True


def _fit_simple(method: str, rows: Sequence[Sample], target: str, request: FitRequest) -> object:
    """A candidate that needs no validation rows to stop on (everything but SeerNet), fitted on ``rows``."""
    if method == "pretrained_rescaled":
        return fit_rescaled(_pretrained_network(request.pretrained), rows, target)
    if method == "operator_trees":
        return fit_operator_model(rows, target, request.seed, prior=_pretrained_operators(request.pretrained),
                                  auxiliary=request.auxiliary)
    return fit_tabular(method, [s.graph for s in rows], np.array([s.targets[target] for s in rows]), request.seed)


def select_and_fit(samples: list[Sample], target: str, request: FitRequest,
                   methods: Sequence[str] = FIT_METHODS) -> tuple[Candidate, list[Candidate]]:
    """Fit every method on the same training rows, score each on the same validation rows, pick the best.

    A winner other than SeerNet is refitted on training + validation rows (cheap, and it has no early stopping
    that needs the validation rows); a SeerNet winner keeps the rows it was early-stopped on.
    """
    if len(samples) < 4:
        raise ValueError(f"need at least 4 measured rows to fit, got {len(samples)}")
    unknown = [m for m in methods if m not in FIT_METHODS]
    if unknown:
        raise ValueError(f"unknown fit method(s) {unknown}; known: {list(FIT_METHODS)}")
    train, val = split_for_fit(samples, request)
    candidates = []
    for method in methods:
        if not _applies(method, train, target, request):
            continue
        if method.startswith("seernet"):
            model = fit_seernet(train, val, target, request,
                                request.pretrained if method == "seernet_pretrained" else None)
        else:
            model = _fit_simple(method, train, target, request)
        candidate = Candidate(method, model, {})
        candidate.validation = score(candidate.predict(val), np.array([s.targets[target] for s in val]))
        candidates.append(candidate)
        log.info("fit %s: validation %s", method, candidates[-1].validation)
    if not candidates:
        raise ValueError(f"none of the methods {list(methods)} applies to these rows")
    best = max(candidates, key=lambda c: c.rank_key)
    preferred = next((c for c in candidates if c.name == request.prefer), None)
    if preferred is not None and (preferred.validation.get("spearman") or -1.0) >= \
            (best.validation.get("spearman") or -1.0) - PREFER_MARGIN:
        best = preferred
    if not best.name.startswith("seernet"):
        best = Candidate(best.name, _fit_simple(best.name, train + val, target, request), best.validation)
    return best, candidates


def save_candidate(best: Candidate, out: Path, target: str, info: ManifestInfo, train: Sequence[Sample],
                   val: Sequence[Sample], test: Sequence[Sample] = (), base: Path | None = None) -> Path:
    """Save the chosen candidate (SeerNet, rescaled, operator trees or tabular) with one manifest shape;
    ``test`` rows, when given, are scored into it (rows no candidate saw, neither in fitting nor in choosing);
    ``base``: the SeerNet predictor an operator-tree winner carries for its other metrics."""
    if isinstance(best.model, TrainedEnsemble):
        save_scored(best.model, out, info, train, val, test)
        return out
    tested = {}
    if test:
        tested = {target: score(best.predict(test), np.array([s.targets[target] for s in test]))}
    manifest = {"name": info.name, "device_key": info.device_key, "metrics": [target],
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **info.manifest_fields(train, val, test, [target], {"validation": best.validation, "test": tested})}
    if isinstance(best.model, RescaledPredictor):
        return best.model.save(out, manifest)
    if isinstance(best.model, OperatorModel):
        return save_operator_model(best.model, out, manifest, base, memory_line_for(train, val, base))
    return save_tabular(best.model, out, manifest)


def memory_line_for(train: Sequence[Sample], val: Sequence[Sample], base: Path | None = None) -> dict | None:
    """The inference-memory line (``seernet.memory_line``) an operator predictor carries, when its rows
    measured memory: fitted on ``train``, scored on ``val`` beside the ``base`` network's predictions (both
    scores kept in the manifest), then refitted on all the rows; None when too few rows measured memory.

    It replaces the base even where the base scores better on the validation rows: those rows come from the
    spaces the base was trained on, and real architectures tell the other story — the AVX-512 EPYC's own
    SeerNet beat the line on its validation rows (7.7 against 11.8 % MAPE) and lost on 164 real
    architectures measured on that CPU (32.1 against 16.7 %), as the reference network did on the two others
    (README, "Memory from weights and live activations")."""
    from .memory_line import MEMORY_TERMS, METRIC, fit_memory_line, predict_memory

    checked = [s for s in val if s.targets.get(METRIC, 0) > 0]
    coefficients = fit_memory_line(train)
    if coefficients is None or len(checked) < 4:
        return None
    truth = np.array([s.targets[METRIC] for s in checked])
    line = score(predict_memory([s.graph for s in checked], coefficients), truth)
    base_score = None
    if base is not None:
        base_predictor = Predictor.load(base)
        if METRIC in base_predictor.metrics:
            base_score = score(np.array([p.values[METRIC] for p in base_predictor.predict_graphs(
                [s.graph for s in checked])]), truth)
    return {"metric": METRIC, "terms": list(MEMORY_TERMS), "coefficients": fit_memory_line([*train, *val]),
            "validation": {"line": line, "base": base_score}}


def selection_summary(best: Candidate, candidates: Sequence[Candidate], prefer: str | None = None) -> dict:
    rule = "validation Spearman, then MAPE"
    if prefer:
        rule = f"{prefer} unless another's validation Spearman is more than {PREFER_MARGIN} higher; else " + rule
    return {"chosen": best.name, "by": rule,
            "candidates": {c.name: {k: c.validation.get(k) for k in ("spearman", "kendall", "mape", "acc10")}
                           for c in candidates}}


def run_fit(request: FitRequest, methods: Sequence[str] = FIT_METHODS, samples: list[Sample] | None = None,
            device_key: str | None = None) -> dict:
    """CSV (or ``samples`` already read, e.g. from the dataset store) → every candidate → the best saved to
    ``request.out``; returns what was chosen and every score."""
    if samples is None:
        samples = samples_from_csv(request.measurements, request.target, request.space)
    best, candidates = select_and_fit(samples, request.target, request, methods)
    selection = selection_summary(best, candidates, request.prefer)
    if request.out is not None:
        train, val = split_for_fit(samples, request)
        info = ManifestInfo(request.out.name, device_key or f"custom:{request.measurements.stem}",
                            split={"kind": "fit train/validation", "seed": request.seed},
                            source={"fitted_from": str(request.measurements),
                                    "pretrained": str(request.pretrained or "") or None, "selection": selection,
                                    "auxiliary_rows": len(request.auxiliary)})
        save_candidate(best, request.out, request.target, info, train, val, base=request.base)
    return selection


__all__ = ["FIT_METHODS", "Candidate", "FitRequest", "fit_samples", "memory_line_for", "run_fit", "samples_from_csv",
           "save_candidate", "select_and_fit", "selection_summary", "split_for_fit"]
