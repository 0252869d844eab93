"""Trees exported to arrays predict what scikit-learn predicts, chunked or not."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor

from seernet import trees
from seernet.trees import export_trees, merge_trees, predict_trees


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
    assert predict_trees(test, arrays, params) == pytest.approx(model.predict(test), abs=1e-9)
    monkeypatch.setattr(trees, "PREDICT_CHUNK_ROWS", 64)  # rows walked in chunks give the same answer
    assert predict_trees(test, arrays, params) == pytest.approx(model.predict(test), abs=1e-9)
    assert predict_trees(test[:0], arrays, params).shape == (0,)


def test_merged_trees_predict_the_sum_of_both_ensembles():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    first = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(x, x[:, 0] ** 2)
    second = HistGradientBoostingRegressor(max_iter=20, max_leaf_nodes=7, random_state=0).fit(x, np.abs(x[:, 1]))
    arrays, params = merge_trees(export_trees(first), export_trees(second))
    test = rng.normal(size=(101, 4))
    assert len(arrays["roots"]) == 50
    assert predict_trees(test, arrays, params) == pytest.approx(first.predict(test) + second.predict(test), abs=1e-9)
