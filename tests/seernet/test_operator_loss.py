"""Operator-level labels and loss: kernel groups mapped onto graph nodes, the loss's zero and gradient, and
training with it pulling per-operator costs towards measured kernels."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from seernet.features import FeatureNormalizer
from seernet.graph import build_graph
from seernet.graph_cache import stripped_onnx
from seernet.nn import SeerNetConfig
from seernet.operator_labels import label_operators
from seernet.operator_loss import operator_loss
from seernet.pyg import collate, to_data
from seernet.spaces import ModelConfig
from seernet.train import TrainConfig, fit_ensemble, to_dataset
from tests.server.fixtures import tiny_samples

MLP = ModelConfig("mlp", {"widths": [64, 32], "activation": "relu", "norm": "none"}, batch_size=4, input_size=16)


@pytest.fixture(scope="module")
def mlp_graph():
    return build_graph(stripped_onnx(MLP), batch_size=4)


def _fused_kernels(graph) -> list[tuple[list[str], float]]:
    """Gemm+Relu pairs fused, as onnxruntime's FusedGemm does, plus a runtime-inserted kernel (no nodes)."""
    names, ops = graph.node_names, graph.op_types
    kernels, i = [], 0
    while i < len(names):
        group = names[i:i + 2] if ops[i] == "Gemm" and i + 1 < len(names) and ops[i + 1] == "Relu" else [names[i]]
        kernels.append((group, 0.01 * (len(kernels) + 1)))
        i += len(group)
    return kernels + [([], 0.05), (["not_in_this_graph"], 0.02)]


def test_fused_kernels_label_every_node_they_ran_and_unmapped_time_is_reported(mlp_graph):
    kernels = _fused_kernels(mlp_graph)
    labels = label_operators(mlp_graph, kernels)
    mapped = [k for k in kernels if k[0] and k[0] != ["not_in_this_graph"]]
    assert labels.groups == len(mapped)
    for g, (names, ms) in enumerate(mapped):
        rows = [mlp_graph.node_names.index(n) for n in names]
        assert set(np.flatnonzero(labels.node_group == g)) == set(rows)
        assert labels.group_ms[g] == pytest.approx(ms)
    total = sum(ms for _, ms in kernels)
    assert labels.coverage == pytest.approx(sum(ms for _, ms in mapped) / total)
    assert labels.weights().sum() == pytest.approx(1.0)
    assert "Gemm" in mlp_graph.op_types and any(len(n) == 2 for n, _ in mapped)  # a fused group was tested


def test_a_profile_of_another_graph_labels_nothing(mlp_graph):
    assert label_operators(mlp_graph, [(["elsewhere"], 1.0)]) is None
    assert label_operators(mlp_graph, []) is None


def _batch(graphs_and_labels):
    normalizer = FeatureNormalizer.fit([g for g, _ in graphs_and_labels])
    return collate([to_data(g, normalizer, None, labels, True) for g, labels in graphs_and_labels])


def test_the_loss_is_zero_when_group_sums_match_and_its_gradient_reaches_only_labelled_nodes(mlp_graph):
    labels = label_operators(mlp_graph, _fused_kernels(mlp_graph))
    batch = _batch([(mlp_graph, None), (mlp_graph, labels)])  # an unprofiled graph first: ids must be offset
    n = mlp_graph.num_nodes
    exact = torch.full((2 * n,), -30.0)
    for g in range(labels.groups):
        rows = np.flatnonzero(labels.node_group == g)
        exact[n + rows] = float(np.log(labels.group_ms[g] / len(rows)))  # equal shares summing to the label
    assert float(operator_loss(exact, batch, 1.0)) == pytest.approx(0.0, abs=1e-6)
    terms = (exact + 0.5).requires_grad_(True)
    loss = operator_loss(terms, batch, 1.0)
    assert float(loss) > 0.1
    loss.backward()
    labelled = torch.from_numpy(np.concatenate([np.full(n, -1), labels.node_group])) >= 0
    assert torch.all(terms.grad[~labelled] == 0) and torch.all(terms.grad[labelled] > 0)


def test_no_profiled_graph_gives_a_zero_loss_that_still_backpropagates(mlp_graph):
    batch = _batch([(mlp_graph, None)])
    terms = torch.zeros(mlp_graph.num_nodes, requires_grad=True)
    loss = operator_loss(terms, batch, 1.0)
    loss.backward()
    assert float(loss) == 0.0 and terms.grad is not None


def _profiled(samples):
    """Synthetic kernels: every node its own kernel, costing a fixed share of the model's time by FLOPs."""
    out = []
    for s in samples:
        flops = s.graph.node_x[:, 0] + 1.0
        ms = s.targets["infer_time_ms"] * flops / flops.sum()
        labels = label_operators(s.graph, [([name], float(t)) for name, t in zip(s.graph.node_names, ms)])
        out.append(dataclasses.replace(s, operators=labels))
    return out


def _mean_operator_loss(ensemble, samples) -> float:
    data = to_dataset(samples, ensemble.targets.metrics, ensemble.features, ensemble.targets, operators=True)
    batch = collate(data)
    model = ensemble.members[0]
    with torch.no_grad():
        _, x, g = model.embed(batch)
        terms = model.additive.node_terms(x, g, batch.batch, batch.work)[:, 0]
        return float(operator_loss(terms, batch, float(ensemble.targets.std[0])))


def test_training_with_the_operator_loss_learns_the_kernels_whole_model_training_does_not_see():
    samples = _profiled(tiny_samples(3))
    net = SeerNetConfig(metrics=("infer_time_ms",), hidden=16, layers=1)
    losses = {}
    for weight in (0.0, 1.0):
        config = TrainConfig(epochs=40, patience=40, seed=0, progress=False, batch_size=4, operator_loss=weight)
        losses[weight] = _mean_operator_loss(fit_ensemble(samples, samples[:3], net, config), samples)
    assert losses[1.0] < 0.5 * losses[0.0], losses
