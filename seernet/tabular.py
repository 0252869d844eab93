"""Simple models on a table of per-operator-type counts and costs: the baselines `fit` must never lose to.

A device whose latency is almost a sum over operator types (NAS-Bench-201 tables
are) is learned at once by a tree ensemble or a ridge regression on how many
operators of each kind a model has and what they cost.  ``perfseer fit`` fits
these beside SeerNet and ships whichever ranks its validation rows best, so a
tabular model is a servable predictor too: features come from the performance
graph (any ONNX or config), and weights are stored as plain arrays
(safetensors + JSON, like SeerNet's) — loading one never executes code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .graph import NODE_FEATURES, PerfGraph
from .op_vocab import OP_VOCAB
from .trees import export_trees, load_arrays, predict_trees, save_arrays

_KERNEL = NODE_FEATURES.index("kernel_h")
_FLOPS, _BYTES = NODE_FEATURES.index("flops"), NODE_FEATURES.index("bytes_written")
_KERNEL_OPS = {"Conv", "ConvTranspose", "AveragePool", "MaxPool"}


def op_keys(graph: PerfGraph) -> list[str]:
    """Each operator's type, with the kernel size for convolutions and pools (1×1 and 3×3 cost differently).

    Read from ``node_op`` (indices into the op vocabulary), which every graph has, cached ones included."""
    keys = []
    for i, index in enumerate(graph.node_op):
        op = OP_VOCAB[int(index)]
        keys.append(f"{op}_k{int(graph.node_x[i, _KERNEL])}" if op in _KERNEL_OPS else op)
    return keys


def edge_features(arch_str: str) -> np.ndarray:
    """NAS-Bench-201 cells: one-hot operation per edge (6 × 5), then how many of each operation runs.

    The ONNX graph cannot show everything a device pays for: identical parameter-free operations on one
    input (two pools of node 0) are merged by the exporter, and a skip connection is no operator at all.
    A device that runs the network eagerly pays for each edge, so for arch rows the edges are features too.
    """
    from .spaces.nasbench201 import OPS, executed_ops, parse_arch_str

    one_hot = np.zeros((6, len(OPS)))
    for k, (_, _, op) in enumerate(parse_arch_str(arch_str)):
        one_hot[k, OPS.index(op)] = 1.0
    executed = executed_ops(arch_str)
    return np.concatenate([one_hot.reshape(-1), [executed.count(op) for op in OPS]])


def key_vocabulary(graphs: Sequence[PerfGraph]) -> list[str]:
    return sorted({k for g in graphs for k in op_keys(g)})


def table_features(graph: PerfGraph, vocabulary: Sequence[str], edges: bool = False) -> np.ndarray:
    """log1p of the model's global features, then per operator key: count, log1p FLOPs, log1p bytes written;
    with ``edges``, the NAS-Bench-201 cell's edge operations as well (:func:`edge_features`)."""
    index = {k: j for j, k in enumerate(vocabulary)}
    per_key = np.zeros((len(vocabulary), 3))
    for i, key in enumerate(op_keys(graph)):
        j = index.get(key)
        if j is not None:
            per_key[j] += (1.0, graph.node_x[i, _FLOPS], graph.node_x[i, _BYTES])
    per_key[:, 1:] = np.log1p(per_key[:, 1:])
    parts = [np.log1p(np.maximum(graph.global_x, 0.0)), per_key.reshape(-1)]
    if edges:
        if not graph.arch_str:
            raise ValueError("this predictor reads NAS-Bench-201 edges: send the model as a nasbench201 config "
                             "(arch_str), not as ONNX")
        parts.append(edge_features(graph.arch_str))
    return np.concatenate(parts)


@dataclass
class TabularModel:
    """Ridge (``coef`` over standardised features) or gradient-boosted trees (flat node arrays), in log space."""

    kind: str  # "ridge" | "gbt"
    vocabulary: list[str]
    arrays: dict[str, np.ndarray]
    params: dict

    @property
    def edges(self) -> bool:
        return bool(self.params.get("edges", False))

    def features(self, graphs: Sequence[PerfGraph]) -> np.ndarray:
        return np.stack([table_features(g, self.vocabulary, self.edges) for g in graphs]) if graphs \
            else np.zeros((0, 0))

    def predict_log(self, x: np.ndarray) -> np.ndarray:
        a = self.arrays
        if self.kind == "ridge":
            if "low" in a:  # a line is clipped to the features it was fitted on (older models have no range)
                x = np.clip(x, a["low"], a["high"])
            return ((x - a["mean"]) / a["scale"]) @ a["coef"] + float(self.params["intercept"])
        return predict_trees(x, a, self.params)

    def predict(self, graphs: Sequence[PerfGraph]) -> np.ndarray:
        return np.exp(self.predict_log(self.features(graphs)))

    def save(self, directory: Path) -> None:
        save_arrays(self.arrays, directory / "tabular.safetensors")

    @classmethod
    def load(cls, directory: Path, spec: dict) -> "TabularModel":
        arrays = load_arrays(directory / "tabular.safetensors")
        return cls(spec["kind"], list(spec["vocabulary"]), arrays, dict(spec["params"]))

    def spec(self) -> dict:
        return {"kind": self.kind, "vocabulary": self.vocabulary, "params": self.params}


TABULAR_KINDS = ("gbt", "ridge", "gbt_edges", "ridge_edges")


def fit_tabular(kind: str, graphs: Sequence[PerfGraph], targets: np.ndarray, seed: int = 0) -> TabularModel:
    """Fit ``kind`` on log targets.  Trees: 400 depth-3 trees, learning rate 0.05, 80 % row subsampling.
    ``*_edges``: NAS-Bench-201 edge operations as extra features (every graph must carry its arch)."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import RidgeCV

    if kind not in TABULAR_KINDS:
        raise ValueError(f"unknown tabular model {kind!r}; use one of {TABULAR_KINDS}")
    edges = kind.endswith("_edges")
    kind = kind.removesuffix("_edges")
    vocabulary = key_vocabulary(graphs)
    x = np.stack([table_features(g, vocabulary, edges) for g in graphs])
    y = np.log(np.asarray(targets, dtype=np.float64))
    if kind == "ridge":
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        model = RidgeCV(alphas=np.logspace(-4, 3, 15)).fit((x - mean) / scale, y)
        # the training range, to which predictions clip their features: fitted on 24 small models, an unclipped
        # line predicted real architectures 20,000 % off (bench/results/calibrate_operator_trees.json, 2 min)
        return TabularModel("ridge", vocabulary, {"mean": mean, "scale": scale, "coef": model.coef_.astype(np.float64),
                                                  "low": x.min(axis=0), "high": x.max(axis=0)},
                            {"intercept": float(model.intercept_), "alpha": float(model.alpha_), "edges": edges})
    gbt = GradientBoostingRegressor(n_estimators=400, max_depth=3, learning_rate=0.05, subsample=0.8,
                                    random_state=seed).fit(x, y)
    arrays, params = export_trees(gbt)
    return TabularModel("gbt", vocabulary, arrays, {**params, "edges": edges})


def save_tabular(model: TabularModel, directory: Path, manifest: dict) -> Path:
    """A tabular predictor directory: ``tabular.safetensors`` + ``manifest.json`` (``kind: tabular``)."""
    from .predictor import MANIFEST, manifest_version

    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    manifest = {**manifest, "kind": "tabular", "tabular": model.spec(), "members": 1}
    manifest["version"] = manifest_version(manifest, [directory / "tabular.safetensors"])
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return directory


__all__ = ["TABULAR_KINDS", "TabularModel", "edge_features", "fit_tabular", "save_tabular", "table_features"]
