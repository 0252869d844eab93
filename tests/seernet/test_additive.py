"""The additive read-out: a per-operator sum that extrapolates, and the PCGrad step over several tensors."""
from __future__ import annotations

import math
import random

import numpy as np
import torch

from seernet.fit import _transfer_state
from seernet.nn import SeerNet, SeerNetConfig
from seernet.nn.additive import AdditiveReadout
from seernet.pcgrad import shared_representation_step
from seernet.predictor import Predictor, save_predictor
from seernet.pyg import pool_logsumexp
from seernet.train import TrainConfig, fit_ensemble
from tests.server.fixtures import METRICS, tiny_samples


def test_pool_logsumexp_matches_torch_per_group_and_is_stable():
    x = torch.tensor([[1.0], [2.0], [1000.0], [1000.0]])
    out = pool_logsumexp(x, torch.tensor([0, 0, 1, 1]), 2)
    assert torch.allclose(out[0], torch.logsumexp(x[:2], 0))
    assert torch.allclose(out[1], torch.tensor([1000.0 + math.log(2)]))  # no overflow


def _readout() -> AdditiveReadout:
    return AdditiveReadout(4, ("infer_time_ms", "train_mem_mb"), log_mean=(0.5, 3.0), log_std=(2.0, 1.0),
                           work_scale=(20.0, 18.0, 4.0))


def test_additive_readout_sums_operator_costs():
    layer = _readout()
    with torch.no_grad():
        layer.constant.fill_(-100.0)  # no model-independent base: the operators alone
    x, g, work = torch.randn(5, 4), torch.randn(1, 4), torch.rand(5, 2) * 20
    one = layer(x, g, torch.zeros(5, dtype=torch.long), 1, work)
    twice = layer(torch.cat([x, x]), g, torch.zeros(10, dtype=torch.long), 1, torch.cat([work, work]))
    # the same operators twice cost twice as much: +log 2 in log units, i.e. +log 2 / σ normalised
    torch.testing.assert_close(twice - one, torch.tensor([[math.log(2) / 2.0, math.log(2) / 1.0]]))
    terms = layer.node_terms(x, g, torch.zeros(5, dtype=torch.long), work)
    torch.testing.assert_close(one[0], (torch.log(torch.exp(terms).sum(0)) - layer.log_mean) / layer.log_std)


def test_additive_readout_is_roofline_shaped_and_starts_at_the_target_scale():
    layer = _readout()
    with torch.no_grad():
        layer.adjust[-1].weight.zero_()
        layer.adjust[-1].bias.zero_()
        layer.constant.fill_(-100.0)
    x, g, batch = torch.randn(3, 4), torch.randn(1, 4), torch.zeros(3, dtype=torch.long)
    work = torch.tensor([[30.0, 0.0]] * 3)  # compute-bound operators: e^30 FLOPs each, no traffic
    base = layer(x, g, batch, 1, work)
    tenfold = layer(x, g, batch, 1, work + torch.tensor([math.log(10), 0.0]))
    torch.testing.assert_close(tenfold - base, torch.full((1, 2), math.log(10)) / layer.log_std, atol=1e-4, rtol=0)
    # three operators whose work totals the typical model's (work_scale): the compute and the traffic
    # terms each sum to e^μ/4, the overhead term (typical model: e^4 operators) to 3·e^(μ−4)/4
    typical = torch.tensor([[20.0, 18.0]]).expand(3, 2) - math.log(3)
    logs = layer.node_terms(x, g, batch, typical)
    expected = layer.log_mean + math.log((2 + 3 * math.exp(-4.0)) / 4)
    torch.testing.assert_close(torch.logsumexp(logs, 0), expected)


def test_shared_step_projects_over_a_tuple_of_representations():
    a = torch.nn.Parameter(torch.ones(1))
    b = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([a, b], lr=0.0)
    # task 0 pulls (z1, z2) along (1, 0); task 1 along (-1, 1): they conflict, as in the single-tensor test
    shared_representation_step(optimizer, (a * 1.0, b * 1.0), lambda z: z,
                               lambda z: [z[0].sum(), (z[1] - z[0]).sum()], random.Random(0))
    assert torch.allclose(a.grad, torch.tensor([0.5])) and torch.allclose(b.grad, torch.tensor([1.5]))


def test_seernet_with_additive_readout_trains_saves_and_transfers(tmp_path):
    samples = tiny_samples(3)
    net = SeerNetConfig(metrics=METRICS, hidden=8, layers=1, additive_readout=True)
    ensemble = fit_ensemble(samples[:6], samples[6:], net, TrainConfig(epochs=2, progress=False))
    config = ensemble.net_config
    assert config.additive_readout and len(config.target_log_mean) == len(METRICS)
    np.testing.assert_allclose(config.target_log_mean, ensemble.targets.mean)
    save_predictor(ensemble, tmp_path / "p", "p", "cpu")
    loaded = Predictor.load(tmp_path / "p")
    values, _ = ensemble.predict(samples)
    np.testing.assert_allclose([[p.values[m] for m in METRICS] for p in loaded.predict_graphs([s.graph for s in samples])],
                               values, rtol=1e-5)
    single = SeerNetConfig(**{**config.to_dict(), "metrics": ("latency_ms",), "target_log_mean": (0.0,),
                              "target_log_std": (1.0,)})
    SeerNet(single).load_state_dict(_transfer_state(loaded, single))  # every weight has a home, shapes agree
