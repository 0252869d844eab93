"""`fit` never ships a predictor worse than a simple model on its own validation rows (synthetic device tables)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from seernet.fit import FitRequest, select_and_fit
from seernet.graph_cache import graph_for
from seernet.data import Sample
from seernet.predictor import Predictor
from seernet.scores import score
from seernet.spaces.nasbench201 import NasBench201Space
from seernet.spaces.nasbench201 import executed_ops
from seernet.synthetic_tables import DEVICES, synthetic_table
from seernet.tabular import fit_tabular
from seernet.train import TrainConfig

N_ROWS = 100


def _samples(rows) -> list[Sample]:
    return [Sample(r.arch_str, "nasbench201", graph_for(NasBench201Space.config_for(r.arch_str)),
                   {"latency_ms": r.latency_ms}) for r in rows]


@pytest.fixture(scope="module")
def table():
    rows = synthetic_table("pool_heavy", N_ROWS, seed=0, noise=0.02)
    return _samples(rows)


def test_the_onnx_graph_hides_dead_end_and_merged_operations():
    """Why edge features: an eager device runs a conv whose output is unused, the exported graph drops it."""
    from collections import Counter

    from seernet.tabular import op_keys

    # nodes 1 and 2 feed nothing: only 0→3 reaches the output, yet an eager run computes all four convs
    cell = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|none~1|none~2|"
    graph = graph_for(NasBench201Space.config_for(cell))
    assert executed_ops(cell).count("nor_conv_1x1") == 4
    assert Counter(op_keys(graph))["Conv_k1"] == 15 * 1 + 2  # 1 per cell survives export (+ 2 in reduction blocks)


def test_synthetic_tables_are_reproducible_and_distinct():
    a, b = synthetic_table("flat", 20, seed=1), synthetic_table("flat", 20, seed=1)
    assert a == b and len({r.arch_str for r in a}) == 20
    cell = "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|"
    assert executed_ops(cell) == ["avg_pool_3x3", "skip_connect", "nor_conv_3x3"]
    assert set(DEVICES) == {"conv_heavy", "pool_heavy", "skip_heavy", "flat"}


def test_tree_export_predicts_like_sklearn(table):
    from sklearn.ensemble import GradientBoostingRegressor

    from seernet.tabular import table_features

    y = np.array([s.targets["latency_ms"] for s in table])
    model = fit_tabular("gbt", [s.graph for s in table], y)
    x = np.stack([table_features(s.graph, model.vocabulary) for s in table])
    reference = GradientBoostingRegressor(n_estimators=400, max_depth=3, learning_rate=0.05, subsample=0.8,
                                          random_state=0).fit(x, np.log(y))
    assert np.allclose(model.predict_log(x), reference.predict(x), atol=1e-9)


def test_fit_ships_the_best_candidate_and_ranks_a_synthetic_table(table, tmp_path):
    train, test = table[:70], table[70:]
    request = FitRequest(tmp_path / "m.csv", "latency_ms", seed=0,
                         train=TrainConfig(epochs=15, ensemble=1, patience=15, progress=False, batch_size=16))
    methods = ("seernet", "gbt", "ridge", "gbt_edges", "ridge_edges")
    best, candidates = select_and_fit(train, "latency_ms", request, methods)
    assert {c.name for c in candidates} == set(methods)
    assert all(best.rank_key >= c.rank_key for c in candidates)  # never below the best baseline on its split
    result = score(best.predict(test), np.array([s.targets["latency_ms"] for s in test]))
    assert result["spearman"] >= 0.95, (best.name, result)


def test_fit_cli_writes_a_servable_predictor_that_says_what_it_chose(tmp_path):
    from perfseer.cli import main

    rows = synthetic_table("conv_heavy", 30, seed=2)
    csv = tmp_path / "device.csv"
    csv.write_text("arch_str,latency_ms\n" + "".join(f"{r.arch_str},{r.latency_ms}\n" for r in rows))
    out = tmp_path / "my_device"
    assert main(["fit", "--measurements", str(csv), "--target", "latency_ms", "--out", str(out), "--space",
                 "nasbench201", "--methods", "gbt", "ridge", "gbt_edges", "ridge_edges"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["selection"]["chosen"] in ("gbt", "ridge", "gbt_edges", "ridge_edges")
    assert manifest["kind"] == "tabular" and set(manifest["selection"]["candidates"]) == {
        "gbt", "ridge", "gbt_edges", "ridge_edges"}
    predictor = Predictor.load(out)
    config = NasBench201Space.config_for(rows[0].arch_str)
    value = predictor.predict_graphs([graph_for(config)])[0].values["latency_ms"]
    assert 0.5 * rows[0].latency_ms < value < 2.0 * rows[0].latency_ms
    with pytest.raises(ValueError, match="nasbench201 config") if manifest["selection"]["chosen"].endswith(
            "_edges") else _nothing():
        from seernet.graph import build_graph
        from seernet.graph_cache import stripped_onnx

        predictor.predict_graphs([build_graph(stripped_onnx(config))])  # ONNX alone: no arch string


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
