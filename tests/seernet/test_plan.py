"""Inference on one row per class of identical nodes equals the full computation (seernet.nn.plan)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seernet.graph import build_graph
from seernet.graph_cache import stripped_onnx
from seernet.nn.plan import compressed_plan, identity_plan
from seernet.predictor import Predictor, inference_plan
from seernet.inference_batch import InferenceBatch
from seernet.pyg import collate, to_data
from seernet.spaces import SPACES

from ..conftest import SHIPPED_PREDICTOR


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor.load(SHIPPED_PREDICTOR)


@pytest.fixture(scope="module")
def graphs():
    configs = [c for s in ("nasbench201", "cnn", "vit", "bert", "mlp") for c in SPACES[s].sample_n(3, seed=5)]
    return [build_graph(stripped_onnx(c), batch_size=c.batch_size) for c in configs]


def test_compressed_inference_equals_the_full_computation(shipped, graphs):
    batch = InferenceBatch.from_graphs(graphs, shipped.features)
    plan = inference_plan(batch, shipped.members[0].config.layers)
    with torch.inference_mode():
        for member in shipped.members:
            full, compressed = member(batch), member(batch, plan)
            assert torch.allclose(full, compressed, rtol=1e-5, atol=1e-5)
    # and it is smaller: NAS-Bench-201 cells repeat, so most rows are shared
    nodes = batch.x.size(0)
    assert plan.layers[-1].size < 0.8 * nodes and plan.node_rows.numel() < 0.5 * nodes


def test_the_inference_batch_is_the_collated_batch(shipped, graphs):
    """Serving scales all graphs of a batch at once; training collates one ``Data`` per graph: the network
    must see the same tensors either way."""
    fast = InferenceBatch.from_graphs(graphs, shipped.features)
    collated = collate([to_data(g, shipped.features) for g in graphs])
    for name in ("x", "op", "category", "edge_index", "edge_attr", "u", "work", "batch"):
        assert torch.equal(getattr(fast, name), getattr(collated, name)), name


def test_the_service_path_predicts_what_one_graph_at_a_time_does(shipped, graphs):
    together = shipped.predict_graphs(graphs)
    for graph, prediction in zip(graphs, together):
        alone = shipped.predict_graphs([graph])[0]
        for metric in shipped.metrics:
            assert prediction.values[metric] == pytest.approx(alone.values[metric], rel=1e-5)
            assert prediction.uncertainty[metric] == pytest.approx(alone.uncertainty[metric], rel=1e-3, abs=1e-5)


def test_classes_never_span_graphs_and_only_equal_nodes_share_one():
    # two identical graphs: a chain a→b→c with a node d→c (b and d equal features, different neighbourhoods)
    x = np.array([[0.0], [1.0], [2.0], [1.0]] * 2, dtype=np.float32)
    edges = np.array([[0, 1, 3], [1, 2, 2]])
    edge_index = np.concatenate([edges, edges + 4], axis=1)
    edge_attr = np.ones((6, 1), dtype=np.float32)
    batch = np.array([0] * 4 + [1] * 4)
    plan = compressed_plan(x, edge_attr, edge_index, batch, 2, layers=2)
    assert plan.node_rows.numel() == 6  # b and d share a first class within each graph, never across
    assert plan.layers[0].size == 8  # after one round b (fed by a) and d (fed by nothing) differ
    assert sorted(plan.layers[-1].node_count.tolist()) == [1.0] * 8
    full = identity_plan(8, torch.from_numpy(edge_index), torch.from_numpy(batch), 2, 2)
    assert full.layers[0].size == 8 and full.node_rows is None


def test_grouping_matches_numpy_unique():
    """``_group`` replaces ``np.unique`` (without its stable sort): same groups, in the same order."""
    from seernet.nn.plan import _group

    rng = np.random.default_rng(3)
    for keys in (rng.integers(0, 7, 50).astype(np.uint64), np.array([5], dtype=np.uint64),
                 np.zeros(0, dtype=np.uint64), rng.integers(0, 2**63, 300).astype(np.uint64)):
        inverse, first, counts = _group(keys)
        values, expected_inverse, expected_counts = np.unique(keys, return_inverse=True, return_counts=True)
        assert np.array_equal(inverse, expected_inverse.reshape(-1)) and np.array_equal(counts, expected_counts)
        assert np.array_equal(keys[first], values)  # a representative of each group, groups in key order


def test_a_small_pass_computes_every_row_and_predicts_the_same(shipped, graphs):
    """One small network alone: finding its classes would cost more than the rows it saves, so the pass computes
    every row; the answer is the compressed pass's (here forced by a larger pass holding the same graph)."""
    from seernet.predictor import COMPRESS_ABOVE_NODES

    small = min(graphs, key=lambda g: g.num_nodes)
    assert small.num_nodes <= COMPRESS_ABOVE_NODES
    layers = shipped.members[0].config.layers
    alone = InferenceBatch.from_graphs([small], shipped.features)
    assert inference_plan(alone, layers).node_rows is None  # every row
    together = InferenceBatch.from_graphs([small, *graphs], shipped.features)
    assert inference_plan(together, layers).node_rows is not None  # classes
    first = shipped.predict_graphs([small])[0]
    compressed = shipped.predict_graphs([small, *graphs])[0]
    for metric in shipped.metrics:
        assert first.values[metric] == pytest.approx(compressed.values[metric], rel=1e-5)
