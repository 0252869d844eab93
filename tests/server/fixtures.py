"""A small real predictor, trained in seconds on a handful of space models, for service tests."""
from __future__ import annotations

from pathlib import Path

from seernet.data import Sample
from seernet.graph import build_graph
from seernet.graph_cache import stripped_onnx
from seernet.nn import SeerNetConfig
from seernet.predictor import save_predictor
from seernet.spaces import SPACES
from seernet.train import TrainConfig, fit_ensemble

METRICS = ("infer_time_ms", "train_time_ms", "infer_mem_mb", "train_mem_mb")


def tiny_samples(n_per_space: int = 4) -> list[Sample]:
    """Targets are a deterministic function of FLOPs and bytes: the point is plumbing, not accuracy."""
    samples = []
    for name in ("mlp", "nasbench201", "vit"):
        for config in SPACES[name].sample_n(n_per_space, seed=7):
            graph = build_graph(stripped_onnx(config), batch_size=config.batch_size)
            flops, memory = graph.global_value("flops_sum"), graph.global_value("memory_sum")
            targets = {"infer_time_ms": 1e-7 * flops + 0.05, "train_time_ms": 3e-7 * flops + 0.2,
                       "infer_mem_mb": 1e-6 * memory + 5, "train_mem_mb": 3e-6 * memory + 20}
            samples.append(Sample(config.config_id, name, graph, targets, config))
    return samples


def train_tiny_predictor(directory: Path, seed: int = 0, epochs: int = 3, members: int = 2) -> Path:
    samples = tiny_samples()
    ensemble = fit_ensemble(samples[:-3], samples[-3:], SeerNetConfig(metrics=METRICS, hidden=16, layers=1),
                            TrainConfig(epochs=epochs, ensemble=members, seed=seed, progress=False, batch_size=8))
    return save_predictor(ensemble, directory, directory.name, "cpu:test-cpu:1t",
                          extra={"scores": {"test": {"infer_time_ms": {"mape": 12.5}}}})
