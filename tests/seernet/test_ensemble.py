"""The stacked ensemble (seernet.nn.ensemble) computes what each member computes alone."""
from __future__ import annotations

import pytest
import torch

from seernet.graph import build_graph
from seernet.graph_cache import stripped_onnx
from seernet.inference_batch import InferenceBatch
from seernet.nn import SeerNet, SeerNetConfig
from seernet.nn.ensemble import StackedEnsemble, stackable
from seernet.predictor import Predictor, inference_plan
from seernet.spaces import SPACES

from ..conftest import SHIPPED_PREDICTOR


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor.load(SHIPPED_PREDICTOR)


@pytest.fixture(scope="module")
def batch(shipped):
    configs = [c for s in ("nasbench201", "cnn", "vit", "bert", "mlp") for c in SPACES[s].sample_n(3, seed=11)]
    graphs = [build_graph(stripped_onnx(c), batch_size=c.batch_size) for c in configs]
    return InferenceBatch.from_graphs(graphs, shipped.features)


@pytest.mark.parametrize("compressed", [True, False])
def test_stacked_members_equal_each_member_alone(shipped, batch, compressed):
    layers = shipped.members[0].config.layers
    plan = inference_plan(batch, layers) if compressed else shipped.members[0].plan_of(batch)
    stacked = StackedEnsemble(shipped.members)(batch, plan)
    with torch.inference_mode():
        alone = torch.stack([m(batch, plan) for m in shipped.members])
    assert stacked.shape == alone.shape == (len(shipped.members), 15, len(shipped.network_metrics))
    assert torch.allclose(stacked, alone, rtol=1e-5, atol=1e-5)


def test_members_with_different_weights_stay_apart(shipped, batch):
    """A member's weights must reach only its own slice of the output: swapping the members swaps it."""
    plan = inference_plan(batch, shipped.members[0].config.layers)
    forward = StackedEnsemble(shipped.members)(batch, plan)
    backward = StackedEnsemble(shipped.members[::-1])(batch, plan)
    assert not torch.allclose(forward[0], forward[1])
    assert torch.allclose(forward.flip(0), backward, rtol=1e-6, atol=1e-6)


def test_other_architectures_run_member_by_member(shipped, batch):
    config = SeerNetConfig(metrics=("infer_time_ms",), hidden=16, layers=1, gnpb=False)
    assert not stackable(config) and stackable(shipped.members[0].config)
    with pytest.raises(ValueError, match="SynMM, GNPB"):
        StackedEnsemble([SeerNet(config).eval(), SeerNet(config).eval()])


def test_a_graph_without_edges_is_predicted_like_each_member_does(shipped):
    """One operator, no tensor between operators: the stacked pass's edge rows are empty."""
    from tests.onnx_builders import single_op

    graph = build_graph(single_op("Relu", {"x": (1, 8)}).SerializeToString(), batch_size=1)
    assert graph.num_edges == 0
    batch = InferenceBatch.from_graphs([graph], shipped.features)
    plan = inference_plan(batch, shipped.members[0].config.layers)
    with torch.inference_mode():
        alone = torch.stack([m(batch, plan) for m in shipped.members])
    assert torch.allclose(StackedEnsemble(shipped.members)(batch, plan), alone, rtol=1e-5, atol=1e-5)


def test_graphs_go_in_equal_passes_of_at_most_the_cap():
    cap = Predictor.STACKED_PASS_GRAPHS
    for n in (1, cap - 1, cap, cap + 1, 50, 3 * cap + 5):
        passes = Predictor.passes(list(range(n)))
        assert [g for p in passes for g in p] == list(range(n))  # every graph once, in order
        assert max(map(len, passes)) <= cap and max(map(len, passes)) - min(map(len, passes)) <= 1
    assert [len(p) for p in Predictor.passes(list(range(50)))] == [25, 25]
    assert Predictor.passes([]) == []
