"""Training SeerNet (one network per metric) and SeerNet-Multi (PCGrad), with early stopping.

Deterministic for a seed on one machine: seeds fixed, one thread by default.
"""
from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
from torch_geometric.loader import DataLoader
from tqdm import tqdm

from .data import Sample
from .features import FeatureNormalizer, work_log_scale
from .nn import SeerNet, SeerNetConfig
from .operator_loss import METRIC as OPERATOR_METRIC, operator_loss
from .pcgrad import PCGrad, shared_representation_step
from .normalize import TargetNormalizer
from .pyg import to_data
from .scores import score

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-5
    patience: int = 25
    plateau_patience: int = 8
    seed: int = 0
    ensemble: int = 1
    pcgrad: bool = True
    pcgrad_mode: str = "shared"  # "shared": at the shared representation (fast); "params": over all parameters
    threads: int = 1
    progress: bool = True
    max_minutes: float = 0.0  # 0: no time limit
    # weight of the operator-level loss (seernet.operator_loss) on profiled samples; 0: whole-model loss only
    operator_loss: float = 1.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_dataset(samples: Sequence[Sample], metrics: Sequence[str], features: FeatureNormalizer,
               targets: TargetNormalizer, operators: bool = False) -> list:
    """``operators``: carry the samples' kernel-group labels (every item alike, empty where unprofiled)."""
    encoded = targets.encode(np.array([s.target_vector(metrics) for s in samples], dtype=np.float64))
    operators = operators and any(s.operators is not None for s in samples)
    return [to_data(s.graph, features, y, s.operators if operators else None, operators)
            for s, y in zip(samples, encoded)]


def _operator_metric(model: torch.nn.Module, net_config: SeerNetConfig, config: TrainConfig,
                     train_data: list) -> int | None:
    """Index of the metric the operator loss applies to, or None when it does not apply (switched off, no
    additive read-out to label, the metric not predicted, or no profiled sample)."""
    if (config.operator_loss <= 0 or getattr(model, "additive", None) is None
            or OPERATOR_METRIC not in net_config.metrics or not train_data
            or "group_count" not in train_data[0] or not any(int(d.group_count.sum()) for d in train_data)):
        return None
    return list(net_config.metrics).index(OPERATOR_METRIC)


def _heads_and_losses(model: torch.nn.Module, batch, operator_index: int | None, weight: float, log_std: float):
    """``(heads, loss_fn)`` over the shared representation: the metric heads, and with ``operator_index``
    the per-node costs too, the operator loss joining that metric's task (so PCGrad treats it as part of it)."""
    def heads(shared):
        pred = model.predict_heads(shared, batch)
        if operator_index is None:
            return pred, None
        _, x, g = shared
        terms = model.additive.node_terms(x, g, batch.batch, batch.work)[:, operator_index]
        return pred, terms

    def loss_fn(out):
        pred, terms = out
        losses = _masked_losses(pred, batch.y)
        if terms is not None:
            losses[operator_index] = losses[operator_index] + weight * operator_loss(terms, batch, log_std)
        return losses

    return heads, loss_fn


def _masked_losses(pred: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Per-metric smooth-L1 in normalised log space (≈ relative error), ignoring unmeasured targets."""
    losses = []
    for k in range(y.size(1)):
        mask = torch.isfinite(y[:, k])
        if mask.any():
            losses.append(torch.nn.functional.smooth_l1_loss(pred[mask, k], y[mask, k], beta=0.05))
        else:
            losses.append(pred[:, k].sum() * 0.0)
    return losses


@torch.no_grad()
def predict_encoded(model: torch.nn.Module, data: list, outputs: int = 1, batch_size: int = 256) -> np.ndarray:
    model.eval()
    chunks = [model(batch).numpy() for batch in DataLoader(data, batch_size=batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, outputs))


def _validation_mape(model: SeerNet, data: list, encoded_targets: np.ndarray, targets: TargetNormalizer) -> float:
    pred = targets.decode(predict_encoded(model, data, len(targets.metrics)))
    truth = targets.decode(encoded_targets)
    mapes = [score(pred[:, k], truth[:, k]).get("mape", math.inf) for k in range(pred.shape[1])]
    return float(np.mean(mapes))


ModelFactory = Callable[[SeerNetConfig], torch.nn.Module]


def train_one(net_config: SeerNetConfig, train_data: list, val_data: list, targets: TargetNormalizer,
              config: TrainConfig, seed: int, init_state: dict | None = None,
              factory: ModelFactory = SeerNet) -> tuple[torch.nn.Module, dict]:
    """One network, trained until validation MAPE stops improving.  Returns the best weights and a history.

    ``factory`` builds the network from ``net_config`` (SeerNet by default; the GNN
    baselines use the same loop, so every method trains under the same rules).
    """
    seed_everything(seed)
    torch.set_num_threads(config.threads)
    model = factory(net_config)
    if init_state is not None:
        model.load_state_dict(init_state)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=config.plateau_patience)
    multi = len(net_config.metrics) > 1 and config.pcgrad
    pcgrad = PCGrad(optimizer, seed) if multi and config.pcgrad_mode == "params" else None
    shared = multi and config.pcgrad_mode == "shared" and hasattr(model, "embed")
    rng = random.Random(seed)
    val_truth = np.concatenate([d.y.numpy() for d in val_data]) if val_data else np.zeros((0, len(net_config.metrics)))
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(train_data, batch_size=config.batch_size, shuffle=True, generator=generator)
    best, best_state, stale, history = math.inf, copy.deepcopy(model.state_dict()), 0, []
    started = time.monotonic()
    bar = tqdm(range(config.epochs), desc=f"train {'+'.join(net_config.metrics)[:40]} s{seed}", unit="ep",
               disable=not config.progress, mininterval=2, leave=False)
    operator_index = _operator_metric(model, net_config, config, train_data)
    log_std = float(targets.std[operator_index]) if operator_index is not None else 1.0
    for epoch in bar:
        model.train()
        total = 0.0
        for batch in loader:
            heads, loss_fn = _heads_and_losses(model, batch, operator_index, config.operator_loss, log_std)
            if shared:
                losses = shared_representation_step(optimizer, model.embed(batch), heads, loss_fn, rng)
                total += float(sum(float(l.detach()) for l in losses)) * batch.num_graphs
                continue
            if operator_index is not None:
                losses = loss_fn(heads(model.embed(batch)))
            else:
                losses = _masked_losses(model(batch), batch.y)
            if pcgrad is not None:
                pcgrad.step(losses)
            else:
                optimizer.zero_grad(set_to_none=True)
                torch.stack(losses).sum().backward()
                optimizer.step()
            total += float(sum(float(l.detach()) for l in losses)) * batch.num_graphs
        train_loss = total / max(1, len(train_data))
        val_mape = _validation_mape(model, val_data, val_truth, targets) if val_data else train_loss
        scheduler.step(val_mape)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_mape": val_mape,
                        "lr": optimizer.param_groups[0]["lr"]})
        bar.set_postfix(loss=f"{train_loss:.4f}", val_mape=f"{val_mape:.2f}", refresh=False)
        if val_mape < best - 1e-4:
            best, best_state, stale = val_mape, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
        if stale >= config.patience:
            break
        if config.max_minutes and time.monotonic() - started > 60 * config.max_minutes:
            log.info("stopping at the %.1f-minute budget", config.max_minutes)
            break
    model.load_state_dict(best_state)
    model.eval()
    return model, {"best_val_mape": best, "epochs": len(history), "seconds": time.monotonic() - started,
                   "history": history}


@dataclass
class TrainedEnsemble:
    """Members of one predictor, with the normalisers they were trained with."""

    net_config: SeerNetConfig
    members: list[torch.nn.Module]
    features: FeatureNormalizer
    targets: TargetNormalizer
    reports: list[dict]

    def predict(self, samples_or_data: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """(values, log-space std) per sample and metric; std is 0 for a single member."""
        data = [to_data(s.graph, self.features) if isinstance(s, Sample) else s for s in samples_or_data]
        encoded = np.stack([predict_encoded(m, data, len(self.targets.metrics)) for m in self.members])
        values = self.targets.decode(encoded.mean(axis=0))
        spread = self.targets.decode_log_std(encoded.std(axis=0)) if len(self.members) > 1 else np.zeros_like(values)
        return values, spread


def fit_ensemble(train: Sequence[Sample], val: Sequence[Sample], net_config: SeerNetConfig, config: TrainConfig,
                 features: FeatureNormalizer | None = None, targets: TargetNormalizer | None = None,
                 init_states: Sequence[dict] | None = None, factory: ModelFactory = SeerNet) -> TrainedEnsemble:
    """Fit normalisers on ``train`` (unless given: transfer keeps the pretrained ones) and train the members."""
    metrics = tuple(net_config.metrics)
    features = features or FeatureNormalizer.fit([s.graph for s in train])
    targets = targets or TargetNormalizer.fit(metrics, np.array([s.target_vector(metrics) for s in train]))
    if net_config.additive_readout:
        net_config = replace(net_config, target_log_mean=tuple(float(v) for v in targets.mean),
                             target_log_std=tuple(float(v) for v in targets.std),
                             work_log_scale=work_log_scale([s.graph for s in train]))
    train_data = to_dataset(train, metrics, features, targets, operators=config.operator_loss > 0)
    val_data = to_dataset(val, metrics, features, targets)
    members, reports = [], []
    for k in range(config.ensemble):
        init = init_states[k % len(init_states)] if init_states else None
        model, report = train_one(net_config, train_data, val_data, targets, config, config.seed + 1000 * k, init,
                                  factory)
        members.append(model)
        reports.append(report)
    return TrainedEnsemble(net_config, members, features, targets, reports)
