"""Trees exported to arrays predict what scikit-learn predicts: onnxruntime's walk and the numpy reference."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor

from seernet import trees
from seernet.trees import export_trees, load_arrays, merge_trees, predict_trees, walk_trees

REPO = Path(__file__).resolve().parents[2]
FLOAT32_OUTPUT = 1e-6  # onnxruntime's TreeEnsembleRegressor sums in float64 and returns float32


@pytest.mark.parametrize("model", [
    GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0),
    HistGradientBoostingRegressor(max_iter=60, max_leaf_nodes=15, min_samples_leaf=5, random_state=0)])
def test_exported_trees_predict_as_sklearn(model, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * rng.normal(size=400)
    model.fit(x, y)
    arrays, params = export_trees(model)
    test = rng.normal(size=(301, 6))
    assert walk_trees(test, arrays, params) == pytest.approx(model.predict(test), abs=1e-9)
    assert predict_trees(test, arrays, params) == pytest.approx(model.predict(test), rel=FLOAT32_OUTPUT)
    monkeypatch.setattr(trees, "PREDICT_CHUNK_ROWS", 64)  # rows walked in chunks give the same answer
    assert walk_trees(test, arrays, params) == pytest.approx(model.predict(test), abs=1e-9)
    assert predict_trees(test[:0], arrays, params).shape == (0,)
    assert predict_trees(test[:1], arrays, params) == pytest.approx(model.predict(test[:1]), rel=FLOAT32_OUTPUT)


def test_merged_trees_predict_the_sum_of_both_ensembles():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    first = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(x, x[:, 0] ** 2)
    second = HistGradientBoostingRegressor(max_iter=20, max_leaf_nodes=7, random_state=0).fit(x, np.abs(x[:, 1]))
    arrays, params = merge_trees(export_trees(first), export_trees(second))
    test = rng.normal(size=(101, 4))
    assert len(arrays["roots"]) == 50
    both = first.predict(test) + second.predict(test)
    assert walk_trees(test, arrays, params) == pytest.approx(both, abs=1e-9)
    assert predict_trees(test, arrays, params) == pytest.approx(both, rel=FLOAT32_OUTPUT)


def test_both_walks_agree_on_ties_nans_and_single_leaf_trees():
    """A value equal to a threshold goes left, a NaN right, and a tree that never split is its leaf."""
    arrays = {"feature": np.array([1, 0, 0, 0]), "threshold": np.array([0.5, 0.0, 0.0, 0.0]),
              "left": np.array([1, -1, -1, -1]), "right": np.array([2, -1, -1, -1]),
              "value": np.array([0.0, -1.0, 2.0, 0.25]), "roots": np.array([0, 3])}
    x = np.array([[9.0, 0.5], [9.0, 0.50001], [9.0, np.nan], [9.0, -3.0]])
    expected = 1.0 + np.array([-1.0, 2.0, 2.0, -1.0]) + 0.25
    assert walk_trees(x, arrays, {"init": 1.0}) == pytest.approx(expected)
    assert predict_trees(x, arrays, {"init": 1.0}) == pytest.approx(expected)


def test_the_shipped_operator_trees_walk_alike_on_real_operators():
    from seernet.graph_cache import graph_for
    from seernet.operator_trees import operator_table
    from seernet.spaces import SPACES

    directory = REPO / "predictors" / "cpu-intel-xeon-avx512"
    spec = json.loads((directory / "manifest.json").read_text())["operators"]
    arrays = load_arrays(directory / "operators.safetensors")
    table = np.concatenate([operator_table(graph_for(c), roofline=spec["params"]["roofline"])
                            for c in SPACES["nasbench201"].sample_n(3, seed=11)])
    reference = walk_trees(table, arrays, spec["params"])
    assert np.abs(predict_trees(table, arrays, spec["params"]) - reference).max() < 2e-7 * np.abs(reference).max() + 1e-7
