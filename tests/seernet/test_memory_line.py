"""Inference memory from weights and live activations: the liveness walk, shared weights, the fit, the predictor."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper

from seernet.data import Sample
from seernet.graph import build_graph
from seernet.memory_line import MEMORY_TERMS, fit_memory_line, memory_terms, peak_live_bytes, predict_memory
from tests.onnx_builders import chain, weight

TOKENS, WIDTH = 4, 256  # every activation below: 4 × 256 floats
ACTIVATION = TOKENS * WIDTH * 4


def test_a_tensor_lives_until_its_last_consumer():
    """a = relu(x); b = relu(a); c = a + b: a and b are both alive when c is made, so the peak is three."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["c"])]
    graph = build_graph(chain(nodes, {"x": (1, TOKENS, WIDTH)}, ["c"]), batch_size=1)
    assert peak_live_bytes(graph) == 3 * ACTIVATION
    straight = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
                helper.make_node("Relu", ["b"], ["c"])]  # each input freed once read: never more than two
    assert peak_live_bytes(build_graph(chain(straight, {"x": (1, TOKENS, WIDTH)}, ["c"]), batch_size=1)) == \
        2 * ACTIVATION


def test_a_shared_weights_identities_are_weights_not_activations():
    """ALBERT's export: an Identity of one weight per use; what flows out of it is held once, as a weight."""
    nodes = [helper.make_node("Identity", ["w"], ["w1"]), helper.make_node("MatMul", ["x", "w1"], ["a"]),
             helper.make_node("Identity", ["w"], ["w2"]), helper.make_node("MatMul", ["a", "w2"], ["b"])]
    graph = build_graph(chain(nodes, {"x": (1, TOKENS, WIDTH)}, ["b"], [weight("w", (WIDTH, WIDTH))]), batch_size=1)
    assert peak_live_bytes(graph) == 2 * ACTIVATION  # a and b, never the 256 KB weight copies
    assert memory_terms(graph)[1] == pytest.approx(WIDTH * WIDTH * 4 / 1e6)
    assert graph.folded_at_load == 2 and memory_terms(graph)[3] == 0  # the runtime drops them at load, copying nothing


def test_the_line_is_recovered_and_predicts_from_terms():
    graphs = []
    for width in (64, 128, 256, 512):
        for tokens in (1, 8, 32, 128, 256):
            nodes = [helper.make_node("MatMul", ["x", "w"], ["a"]), helper.make_node("Relu", ["a"], ["b"])]
            graphs.append(build_graph(chain(nodes, {"x": (1, tokens, width)}, ["b"], [weight("w", (width, width))]),
                                      batch_size=1))
    truth = [10.0, 2.0, 1.5, 0.0]  # nothing here is computed at load: that term's coefficient is 0, not left free
    samples = [Sample(f"m{i}", "mlp", g, {"infer_mem_mb": float(memory_terms(g) @ truth)}) for i, g in enumerate(graphs)]
    assert fit_memory_line(samples) == pytest.approx(truth, rel=1e-6)
    assert predict_memory(graphs[:3], truth) == pytest.approx([s.targets["infer_mem_mb"] for s in samples[:3]])
    assert fit_memory_line(samples[:5]) is None  # too few rows to pin the coefficients


def test_what_the_runtime_computes_at_load_is_a_term_of_its_own():
    """Weight standardisation (Transpose → Mul of a weight, folded at load) writes weight-sized tensors that a
    loading runtime holds at once; a line fitted on models with and without it recovers its coefficient, and a
    predictor fitted before the term existed (three coefficients) predicts as it was fitted."""
    graphs = []
    for width in (64, 128, 256, 512):
        for tokens, standardised in ((1, False), (8, True), (32, False), (128, True), (256, True)):
            nodes = [helper.make_node("MatMul", ["x", "ws" if standardised else "w"], ["a"]),
                     helper.make_node("Relu", ["a"], ["b"])]
            if standardised:
                nodes[:0] = [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
                             helper.make_node("Mul", ["wt", "g"], ["ws"])]
            graphs.append(build_graph(chain(nodes, {"x": (1, tokens, width)}, ["b"],
                                            [weight("w", (width, width)), weight("g", (1,), 1)]), batch_size=1))
    standardised = [g for g in graphs if g.folded_at_load]
    assert len(standardised) == 12
    for g in standardised:  # the transposed copy and the scaled one: two weights' worth
        assert memory_terms(g)[3] == pytest.approx(2 * g.global_value("params_sum") * 4 / 1e6, rel=1e-3)
    truth = [10.0, 2.0, 1.5, 0.8]
    samples = [Sample(f"m{i}", "mlp", g, {"infer_mem_mb": float(memory_terms(g) @ truth)})
               for i, g in enumerate(graphs)]
    assert fit_memory_line(samples) == pytest.approx(truth, rel=1e-6)
    assert predict_memory(standardised[:2], truth[:3]) == pytest.approx([memory_terms(g)[:3] @ truth[:3]
                                                                        for g in standardised[:2]])


def test_an_operator_predictor_serves_memory_from_its_line(tmp_path):
    from seernet.operator_trees import fit_operator_model, save_operator_model
    from seernet.predictor import Predictor
    from tests.operator_fixtures import profiled_mlps

    samples = profiled_mlps()
    line = {"metric": "infer_mem_mb", "terms": list(MEMORY_TERMS), "coefficients": [12.0, 2.0, 1.0]}
    save_operator_model(fit_operator_model(samples), tmp_path / "ops", {"name": "ops", "device_key": "cpu:X:1t"},
                        memory_line=line)
    predictor = Predictor.load(tmp_path / "ops")
    assert predictor.metrics == ("infer_time_ms", "infer_mem_mb")
    assert json.loads((tmp_path / "ops" / "manifest.json").read_text())["memory_line"]["coefficients"] == [12.0, 2.0, 1.0]
    graphs = [s.graph for s in samples[:4]]
    predicted = predictor.predict_graphs(graphs)
    assert [p.values["infer_mem_mb"] for p in predicted] == pytest.approx(list(predict_memory(graphs, [12.0, 2.0, 1.0])))
    assert all(p.values["infer_time_ms"] > 0 and np.isnan(p.uncertainty["infer_mem_mb"]) for p in predicted)


def test_fit_gives_an_operator_predictor_a_memory_line_only_where_rows_measured_memory(trained_predictor):
    from seernet.fit import memory_line_for
    from tests.operator_fixtures import mlp_graph

    base = trained_predictor  # a SeerNet predicting infer_mem_mb among its metrics

    graphs = [mlp_graph([w, w // 2, w // 4], b) for w in (32, 64, 128, 256, 512, 1024) for b in (1, 2, 4, 8, 16)]
    samples = [Sample(f"m{i}", "mlp", g, {"infer_time_ms": 1.0,
                                          "infer_mem_mb": float(memory_terms(g) @ [9.0, 2.0, 1.2, 0.0])})
               for i, g in enumerate(graphs)]
    line = memory_line_for(samples[:24], samples[24:])
    assert line is not None and line["coefficients"] == pytest.approx([9.0, 2.0, 1.2, 0.0], rel=1e-6)
    assert line["validation"]["line"]["mape"] < 1e-6 and line["validation"]["base"] is None
    beside = memory_line_for(samples[:24], samples[24:], base)  # the base network's score is kept beside it
    assert beside["validation"]["base"]["n"] == 6 and beside["coefficients"] == line["coefficients"]
    unmeasured = [Sample(s.key, s.family, s.graph, {"infer_time_ms": 1.0}) for s in samples]
    assert memory_line_for(unmeasured[:24], unmeasured[24:]) is None
