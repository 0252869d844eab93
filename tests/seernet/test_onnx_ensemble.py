"""The exported ensemble (seernet.nn.onnx_ensemble) computes what each member computes alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seernet.graph import build_graph
from seernet.graph_cache import stripped_onnx
from seernet.inference_batch import InferenceBatch
from seernet.nn import SeerNet, SeerNetConfig
from seernet.nn.onnx_ensemble import OnnxEnsemble, export_ensemble, exportable, input_names, plan_inputs
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


def each_member(members, batch, plan) -> np.ndarray:
    with torch.inference_mode():
        return torch.stack([m(batch, plan) for m in members]).numpy()


@pytest.mark.parametrize("compressed", [True, False])
def test_exported_members_equal_each_member_alone(shipped, batch, compressed):
    layers = shipped.members[0].config.layers
    plan = inference_plan(batch, layers) if compressed else shipped.members[0].plan_of(batch)
    exported = shipped.exported()(batch, plan)
    alone = each_member(shipped.members, batch, plan)
    assert exported.shape == alone.shape == (len(shipped.members), 15, len(shipped.network_metrics))
    np.testing.assert_allclose(exported, alone, rtol=1e-5, atol=1e-5)


def test_members_with_different_weights_stay_apart(shipped, batch):
    """A member's weights must reach only its own slice of the output: swapping the members swaps it."""
    plan = inference_plan(batch, shipped.members[0].config.layers)
    forward = OnnxEnsemble(shipped.members)(batch, plan)
    backward = OnnxEnsemble(shipped.members[::-1])(batch, plan)
    assert not np.allclose(forward[0], forward[1])
    np.testing.assert_allclose(forward[::-1], backward, rtol=1e-6, atol=1e-6)


def test_one_member_and_untrained_weights_export_too(batch):
    """Any weights of the shipped architecture, one member or several (not only the shipped checkpoint)."""
    torch.manual_seed(3)
    config = SeerNetConfig(metrics=("infer_time_ms", "train_mem_mb"), hidden=16, layers=2)
    members = [SeerNet(config).eval()]
    plan = inference_plan(batch, config.layers)
    np.testing.assert_allclose(OnnxEnsemble(members)(batch, plan), each_member(members, batch, plan),
                               rtol=1e-5, atol=1e-5)


def test_the_graph_reads_the_inputs_plan_inputs_gives(shipped, batch):
    model = export_ensemble(shipped.members)
    names = input_names(shipped.members[0].config.layers)
    assert [i.name for i in model.graph.input] == names
    assert sorted(plan_inputs(batch, inference_plan(batch, shipped.members[0].config.layers))) == sorted(names)


def test_other_architectures_run_member_by_member(shipped, batch):
    config = SeerNetConfig(metrics=("infer_time_ms",), hidden=16, layers=1, gnpb=False)
    assert not exportable(config) and exportable(shipped.members[0].config)
    with pytest.raises(ValueError, match="SynMM, GNPB"):
        export_ensemble([SeerNet(config).eval(), SeerNet(config).eval()])
    predictor = Predictor({"name": "t", "version": "0", "metrics": ["infer_time_ms"],
                           "features": shipped.manifest["features"],
                           "targets": {"metrics": ["infer_time_ms"], "mean": [0.0], "std": [1.0]}},
                          [SeerNet(config).eval()])
    graphs = [build_graph(stripped_onnx(c), batch_size=1) for c in SPACES["cnn"].sample_n(2, seed=1)]
    assert all(np.isfinite(p.values["infer_time_ms"]) for p in predictor.predict_graphs(graphs))
    assert predictor._exported is None


def test_a_graph_without_edges_is_predicted_like_each_member_does(shipped):
    """One operator, no tensor between operators: the pass's edge rows are empty."""
    from tests.onnx_builders import single_op

    graph = build_graph(single_op("Relu", {"x": (1, 8)}).SerializeToString(), batch_size=1)
    assert graph.num_edges == 0
    batch = InferenceBatch.from_graphs([graph], shipped.features)
    plan = inference_plan(batch, shipped.members[0].config.layers)
    np.testing.assert_allclose(shipped.exported()(batch, plan), each_member(shipped.members, batch, plan),
                               rtol=1e-5, atol=1e-5)


class _Sized:
    """A stand-in graph of some size: ``passes`` reads only ``num_nodes`` and ``num_edges``."""

    def __init__(self, index: int, nodes: int = 160, edges: int = 200) -> None:
        self.index, self.num_nodes, self.num_edges = index, nodes, edges

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Sized) and other.index == self.index


def test_graphs_go_in_equal_passes_of_at_most_the_cap():
    cap = Predictor.PASS_GRAPHS
    for n in (1, cap - 1, cap, cap + 1, 50, 3 * cap + 5):
        passes = Predictor.passes([_Sized(i) for i in range(n)])
        passes = [[g.index for g in p] for p in passes]
        assert [g for p in passes for g in p] == list(range(n))  # every graph once, in order
        assert max(map(len, passes)) <= cap and max(map(len, passes)) - min(map(len, passes)) <= 1
    assert [len(p) for p in Predictor.passes([_Sized(i) for i in range(50)])] == [25, 25]
    assert Predictor.passes([]) == []


def test_large_graphs_split_passes_by_their_operators_and_tensors():
    """What bounds a pass's memory: no pass holds more rows than the cap unless one graph alone does."""
    cap = Predictor.PASS_ROWS
    graphs = [_Sized(0, 20_000, 200_000), _Sized(1, 20_000, 200_000), _Sized(2), _Sized(3, 100, cap),
              _Sized(4), _Sized(5, 5_000, 40_000), _Sized(6, 5_000, 40_000)]
    passes = Predictor.passes(graphs)
    assert [g.index for p in passes for g in p] == list(range(len(graphs)))  # every graph once, in order
    for p in passes:
        assert len(p) == 1 or sum(g.num_nodes + g.num_edges for g in p) <= cap
    assert [[g.index for g in p] for p in passes] == [[0], [1, 2], [3], [4, 5, 6]]


def test_a_predictor_that_cannot_be_exported_is_refused_when_it_loads(monkeypatch):
    """warm() (what the server calls at load) turns an export failure into PredictorLoadError, the error the
    registry keeps serving the previous version on; without it the first request would fail instead."""
    import seernet.predictor as predictor_module
    from seernet.predictor import PredictorLoadError

    predictor = Predictor.load(SHIPPED_PREDICTOR)

    def broken(*args, **kwargs):
        raise RuntimeError("onnxruntime refused the graph")

    monkeypatch.setattr(predictor_module, "OnnxEnsemble", broken)
    with pytest.raises(PredictorLoadError, match="cannot export predictor .* onnxruntime refused the graph"):
        predictor.warm()
