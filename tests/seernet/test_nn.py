"""SeerNet's layers: shapes, SynMM, GNPB, PCGrad on hand-made conflicts, normalisers, checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seernet.features import FeatureNormalizer, Standardizer
from seernet.graph import GLOBAL_FEATURES, build_graph
from seernet.graph_cache import stripped_onnx
from seernet.nn import GraphNetworkBlock, SeerNet, SeerNetConfig, SynMM
from seernet.nn.plan import identity_plan
from seernet.pcgrad import PCGrad, project_conflicting
from seernet.normalize import TargetNormalizer
from seernet.predictor import Predictor, PredictorLoadError, save_predictor, write_manifest
from seernet.pyg import collate, pool_max, to_data
from seernet.spaces import SPACES
from seernet.train import TrainConfig, fit_ensemble
from tests.server.fixtures import METRICS, tiny_samples


@pytest.fixture(scope="module")
def graphs():
    configs = [SPACES[s].sample_n(1, seed=1)[0] for s in ("mlp", "nasbench201", "vit")]
    return [build_graph(stripped_onnx(c), batch_size=c.batch_size) for c in configs]


def test_seernet_output_shapes_for_single_and_multi(graphs):
    normalizer = FeatureNormalizer.fit(graphs)
    batch = collate([to_data(g, normalizer) for g in graphs])
    assert batch.u.shape == (3, len(GLOBAL_FEATURES))
    for metrics in (("infer_time_ms",), METRICS):
        for gnpb, synmm in ((True, True), (False, False)):
            net = SeerNet(SeerNetConfig(metrics=metrics, hidden=16, layers=2, gnpb=gnpb, synmm_readout=synmm,
                                        synmm_aggregation=synmm))
            assert net(batch).shape == (3, len(metrics))
    single = collate([to_data(graphs[0], normalizer)])
    assert SeerNet(SeerNetConfig(hidden=8, layers=1))(single).shape == (1, 1)


def test_synmm_combines_max_and_mean():
    layer = SynMM(2, 1)
    with torch.no_grad():
        layer.proj.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))  # max of dim 0 + mean of dim 1
        layer.proj.bias.zero_()
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]])
    out = layer(x, torch.tensor([0, 0, 1]), 2)
    assert out[:, 0].tolist() == [3.0 + 3.0, 10.0 + 0.0]


def test_global_node_boosts_every_node_update():
    block = GraphNetworkBlock(4, gnpb=True)
    x, e = torch.randn(3, 4), torch.randn(2, 4)
    edges, u, batch = torch.tensor([[0, 1], [1, 2]]), torch.randn(1, 4), torch.zeros(3, dtype=torch.long)
    rows = identity_plan(3, edges, batch, 1, 1).layers[0]
    out_a, _ = block(x, e, u, torch.zeros(1, 4), rows)
    out_b, _ = block(x, e, u, torch.ones(1, 4), rows)
    assert not torch.allclose(out_a, out_b)  # the global node's state reaches every node
    assert (out_a - out_b).abs().sum(dim=1).min() > 0


def test_pcgrad_projects_only_conflicting_gradients():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # dot = -1: conflict
    p1, p2 = project_conflicting([g1, g2])
    # g1 - (g1·g2)/|g2|² g2 = [1,0] + 0.5·[-1,1] = [0.5, 0.5]; g2 + 1·[1,0] = [0, 1]
    assert torch.allclose(p1, torch.tensor([0.5, 0.5])) and torch.allclose(p2, torch.tensor([0.0, 1.0]))
    assert torch.dot(p1, g2) >= -1e-6 and torch.dot(p2, g1) >= -1e-6
    a, b = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])  # no conflict: untouched
    assert all(torch.equal(x, y) for x, y in zip(project_conflicting([a, b]), [a, b]))


def test_pcgrad_sets_the_summed_projected_gradient():
    w = torch.nn.Parameter(torch.tensor([0.0, 0.0]))
    optimizer = torch.optim.SGD([w], lr=1.0)
    pcgrad = PCGrad(optimizer)
    loss1 = (w * torch.tensor([1.0, 0.0])).sum()  # gradient [1, 0]
    loss2 = (w * torch.tensor([-1.0, 1.0])).sum()  # gradient [-1, 1]
    pcgrad.backward([loss1, loss2])
    assert torch.allclose(w.grad, torch.tensor([0.5, 1.5]))
    pcgrad.optimizer.step()
    assert torch.allclose(w.detach(), torch.tensor([-0.5, -1.5]))


def test_target_normalizer_round_trip():
    targets = np.array([[1.0, 10.0], [100.0, np.nan], [5.0, 3.0]])
    norm = TargetNormalizer.fit(("a", "b"), targets)
    encoded = norm.encode(targets)
    assert np.isnan(encoded[1, 1])
    np.testing.assert_allclose(norm.decode(encoded)[~np.isnan(targets)], targets[~np.isnan(targets)])
    again = TargetNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_allclose(again.decode(encoded[[0]]), targets[[0]])
    with pytest.raises(ValueError, match="'b'"):
        TargetNormalizer.fit(("a", "b"), np.array([[1.0, np.nan]]))


def test_feature_normalizer_round_trip_and_schema_check(graphs):
    norm = FeatureNormalizer.fit(graphs)
    again = FeatureNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    for a, b in zip(norm.transform(graphs[1]), again.transform(graphs[1])):
        np.testing.assert_allclose(a, b)
    stale = {**norm.to_dict(), "schema_version": 0}
    with pytest.raises(ValueError, match="retrain"):
        FeatureNormalizer.from_dict(stale)


def test_pool_max_matches_scatter_max_in_values_and_gradients():
    from torch_geometric.utils import scatter

    torch.manual_seed(0)
    x = torch.randn(50, 4)
    x[3], x[7] = x[9], x[9]  # ties within one group share the gradient
    index = torch.randint(0, 6, (50,))
    index[[3, 7, 9]] = 2
    index[index == 5] = 4  # group 5 stays empty: 0, as scatter gives
    for pooled in (pool_max, lambda v, i, n: scatter(v, i, dim=0, dim_size=n, reduce="max")):
        leaf = x.clone().requires_grad_(True)
        out = pooled(leaf, index, 6)
        (out * torch.arange(24.0).view(6, 4)).sum().backward()
        if pooled is pool_max:
            ours = (out.detach(), leaf.grad)
        else:
            reference = (out.detach(), leaf.grad)
    assert torch.equal(ours[0], reference[0]) and torch.equal(ours[0][5], torch.zeros(4))
    torch.testing.assert_close(ours[1], reference[1])


def test_standardizer_clips_to_the_training_range():
    rows = np.array([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]], dtype=np.float32)  # 2nd feature constant in training
    std = Standardizer.fit(rows)
    np.testing.assert_allclose(std(rows)[:, 0], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)  # training rows: untouched
    far = std(np.array([[400.0, 60.0], [-400.0, -60.0]], dtype=np.float32))
    np.testing.assert_allclose(far, [[1.2247449, 0.0], [-1.2247449, 0.0]], rtol=1e-6)
    legacy = Standardizer.from_dict({"mean": [2.0, 5.0], "std": [1.0, 1.0]})  # saved without bounds
    assert legacy.low is None and legacy(np.array([[400.0, 5.0]], dtype=np.float32))[0, 0] == 398.0
    again = Standardizer.from_dict(json.loads(json.dumps(std.to_dict())))
    np.testing.assert_array_equal(again(rows * 100), std(rows * 100))
    bounded = legacy.with_bounds(rows)
    assert bounded(np.array([[400.0, 5.0]], dtype=np.float32))[0, 0] == 2.0 and legacy.low is None


def test_bounds_added_to_a_saved_predictor_make_a_new_version(tmp_path):
    samples = tiny_samples(3)
    ensemble = fit_ensemble(samples[:6], samples[6:], SeerNetConfig(metrics=METRICS, hidden=8, layers=1),
                            TrainConfig(epochs=1, progress=False))
    save_predictor(ensemble, tmp_path / "p", "p", "cpu:x:1t")
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    before = Predictor.load(tmp_path / "p").predict_graphs([s.graph for s in samples[:6]])
    manifest["features"]["global"].pop("low"), manifest["features"]["global"].pop("high")
    write_manifest(tmp_path / "p", manifest)
    unbounded = Predictor.load(tmp_path / "p")
    assert unbounded.version != manifest["version"] and unbounded.features.globals_.low is None
    manifest["features"] = unbounded.features.with_bounds([s.graph for s in samples[:6]]).to_dict()
    write_manifest(tmp_path / "p", manifest)
    rebounded = Predictor.load(tmp_path / "p")
    assert rebounded.version == manifest["version"]  # same weights, same bounds: the same version as saved
    after = rebounded.predict_graphs([s.graph for s in samples[:6]])
    assert [a.values for a in after] == [b.values for b in before]


def test_checkpoint_save_load_predicts_identically(tmp_path):
    samples = tiny_samples(3)
    ensemble = fit_ensemble(samples[:6], samples[6:], SeerNetConfig(metrics=METRICS, hidden=8, layers=1),
                            TrainConfig(epochs=2, ensemble=2, progress=False))
    save_predictor(ensemble, tmp_path / "p", "p", "cpu:x:1t")
    loaded = Predictor.load(tmp_path / "p")
    assert loaded.metrics == METRICS and len(loaded.members) == 2 and len(loaded.version) == 12
    values, spread = ensemble.predict(samples)
    predictions = loaded.predict_graphs([s.graph for s in samples])
    np.testing.assert_allclose([[p.values[m] for m in METRICS] for p in predictions], values, rtol=1e-5)
    np.testing.assert_allclose([[p.uncertainty[m] for m in METRICS] for p in predictions], spread, rtol=1e-4)
    assert all(f.suffix in (".json", ".safetensors") for f in (tmp_path / "p").iterdir())


def test_corrupt_or_pickled_checkpoints_are_refused(tmp_path):
    samples = tiny_samples(2)
    ensemble = fit_ensemble(samples[:4], samples[4:], SeerNetConfig(metrics=METRICS, hidden=8, layers=1),
                            TrainConfig(epochs=1, progress=False))
    directory = save_predictor(ensemble, tmp_path / "p", "p", "cpu")
    (directory / "member-0.safetensors").write_bytes(b"\x80\x04\x95 pickle payload")
    with pytest.raises(PredictorLoadError, match="cannot load predictor"):
        Predictor.load(directory)
    with pytest.raises(PredictorLoadError):
        Predictor.load(tmp_path / "missing")


def test_shared_representation_pcgrad_backpropagates_the_projected_sum():
    import random

    from seernet.pcgrad import shared_representation_step

    w = torch.nn.Parameter(torch.eye(2))  # trunk: z = w @ x
    head_scale = torch.nn.Parameter(torch.ones(2))  # task k reads z[:, k] scaled
    x = torch.tensor([[1.0, 0.0]])
    optimizer = torch.optim.SGD([w, head_scale], lr=0.0)
    directions = (torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0]))

    def loss_fn(z):  # task gradients w.r.t. z are exactly the two (conflicting) directions
        return [(z * d).sum() for d in directions]

    shared_representation_step(optimizer, x @ w.T, lambda z: z, loss_fn, random.Random(0))
    merged = torch.tensor([0.5, 0.5]) + torch.tensor([0.0, 1.0])  # PCGrad of [1,0] and [-1,1], summed
    assert torch.allclose(w.grad, merged[:, None] * x)  # dL/dw = G xᵀ
