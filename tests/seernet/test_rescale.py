"""A pretrained predictor moved to a new device by a line in log space (``pretrained_rescaled`` in ``fit``)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from seernet.data import Sample
from seernet.graph_cache import graph_for
from seernet.predictor import Predictor
from seernet.rescale import fit_rescaled
from seernet.spaces.nasbench201 import NasBench201Space

from ..conftest import SHIPPED_PREDICTOR


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor.load(SHIPPED_PREDICTOR)


def _samples(predictor: Predictor, factor: float, n: int = 12) -> list[Sample]:
    configs = NasBench201Space().sample_n(n, seed=3)
    graphs = [graph_for(c) for c in configs]
    base = [p.values["infer_time_ms"] for p in predictor.predict_graphs(graphs)]
    return [Sample(c.config_id, "nasbench201", g, {"infer_time_ms": factor * b}) for c, g, b in zip(configs, graphs, base)]


def test_a_device_twice_as_slow_is_found_from_a_dozen_rows(shipped):
    rescaled = fit_rescaled(shipped, _samples(shipped, 2.0), "infer_time_ms")
    assert rescaled.b == pytest.approx(1.0, abs=1e-6)
    assert np.exp(rescaled.a) == pytest.approx(2.0, rel=1e-6)


def test_the_saved_predictor_serves_only_the_calibrated_metric_through_the_line(shipped, tmp_path):
    samples = _samples(shipped, 0.5)
    rescaled = fit_rescaled(shipped, samples, "infer_time_ms")
    rescaled.save(tmp_path / "calibrated", {"name": "calibrated", "device_key": "cpu:test:1t"})
    loaded = Predictor.load(tmp_path / "calibrated")
    assert loaded.metrics == ("infer_time_ms",) and loaded.device_key == "cpu:test:1t"
    manifest = json.loads((tmp_path / "calibrated" / "manifest.json").read_text())
    assert manifest["rescaled_from"]["version"] == shipped.version and manifest["version"] != shipped.version
    got = [p.values for p in loaded.predict_graphs([s.graph for s in samples])]
    assert [set(v) for v in got] == [{"infer_time_ms"}] * len(samples)
    assert np.allclose([v["infer_time_ms"] for v in got], [s.targets["infer_time_ms"] for s in samples], rtol=1e-5)
    # rescaling the rescaled predictor composes the two lines instead of forgetting the first
    again = fit_rescaled(loaded, _samples(shipped, 1.5), "infer_time_ms")
    again.save(tmp_path / "twice", {"name": "twice", "device_key": "cpu:test:1t"})
    twice = Predictor.load(tmp_path / "twice")
    expected = [1.5 * p.values["infer_time_ms"] for p in shipped.predict_graphs([s.graph for s in samples])]
    assert np.allclose([p.values["infer_time_ms"] for p in twice.predict_graphs([s.graph for s in samples])],
                       expected, rtol=1e-4)


def test_the_slope_is_held_near_one_by_few_rows(shipped):
    samples = _samples(shipped, 1.0, n=6)
    for s, noise in zip(samples, [1.3, 0.8, 1.25, 0.75, 1.2, 0.85]):
        s.targets["infer_time_ms"] *= noise
    assert 0.6 < fit_rescaled(shipped, samples, "infer_time_ms").b < 1.4
