"""``perfseer fit``: a predictor for a new device from a CSV of your own measurements.

Rows name a model by ONNX path (column ``onnx``, relative to the CSV) or a
NAS-Bench-201 arch string (``arch_str``), with an optional ``batch_size``; the
target column holds the measured value.  With ``pretrained`` the network starts
from a trained predictor (its feature normaliser and the weights of its first
head): a new device then needs tens of measurements, not thousands.
"""
from __future__ import annotations

import csv
import logging
import random
from dataclasses import dataclass, replace
from pathlib import Path

from .data import Sample
from .graph import build_graph
from .graph_cache import graph_for
from .nn import SeerNetConfig
from .nn.additive import AdditiveReadout
from .predictor import Predictor, save_predictor
from .spaces import ModelConfig
from .spaces.nasbench201 import parse_arch_str
from .train import TrainConfig, TrainedEnsemble, fit_ensemble

log = logging.getLogger(__name__)


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
    """The pretrained weights renamed for a one-head network: trunk as is, the first metric's head
    (and its row of the additive read-out's output layer) → the new metric's."""
    source = pretrained.members[0].state_dict()
    first = pretrained.metrics[0]
    state = {}
    for name, tensor in source.items():
        if name.startswith("heads."):
            if name.startswith(f"heads.{first}."):
                state[name.replace(f"heads.{first}.", f"heads.{net.metrics[0]}.")] = tensor.clone()
            continue
        if name.startswith("additive."):
            tensor = AdditiveReadout.metric_slice(name.removeprefix("additive."), tensor, len(pretrained.metrics), 0)
        state[name] = tensor.clone()
    return state


def fit_samples(samples: list[Sample], target: str, request: FitRequest) -> TrainedEnsemble:
    if len(samples) < 4:
        raise ValueError(f"need at least 4 measured rows to fit, got {len(samples)}")
    order = list(samples)
    random.Random(request.seed).shuffle(order)
    n_val = max(2, int(len(order) * request.val_fraction))
    train, val = order[n_val:], order[:n_val]
    config = request.train or TrainConfig(epochs=150, ensemble=2, patience=20, progress=False)
    features, init_states = None, None
    if request.pretrained:
        pretrained = Predictor.load(request.pretrained)
        cfg = pretrained.members[0].config
        net = SeerNetConfig(**{**cfg.to_dict(), "metrics": (target,)})
        features = pretrained.features
        init_states = [_transfer_state(pretrained, net)]
        config = replace(config, lr=config.lr / 4)
    else:
        net = SeerNetConfig(metrics=(target,))
    return fit_ensemble(train, val, net, config, features=features, init_states=init_states)


def run_fit(request: FitRequest) -> TrainedEnsemble:
    samples = samples_from_csv(request.measurements, request.target, request.space)
    ensemble = fit_samples(samples, request.target, request)
    if request.out is not None:
        save_predictor(ensemble, request.out, request.out.name, f"custom:{request.measurements.stem}",
                       extra={"fitted_from": str(request.measurements), "rows": len(samples),
                              "pretrained": str(request.pretrained) if request.pretrained else None})
    return ensemble


__all__ = ["FitRequest", "fit_samples", "run_fit", "samples_from_csv"]
