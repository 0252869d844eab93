"""Latency of one kernel on any GPU: trees predict how far from its roofline bound it runs.

The target is ``log(latency / roofline)``: efficiency, not time.  A tree cannot
extrapolate, but a GPU faster than any it was trained on has a proportionally
smaller roofline bound, so predicting the efficiency carries over to it (the idea
behind NeuSight's utilisation prediction; the model here is our own).  One
ensemble per kernel family, fitted on the measurements of the training GPUs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..trees import predict_trees
from .kernels import FAMILIES, Kernel, Measurement, feature_matrix
from .specs import GpuSpec

MANIFEST = "manifest.json"


@dataclass
class KernelCostModel:
    families: dict[str, tuple[dict[str, np.ndarray], dict]] = field(default_factory=dict)
    trained_on: list[str] = field(default_factory=list)

    def predict_ms(self, kernels: Sequence[Kernel], gpu: GpuSpec) -> np.ndarray:
        """Predicted latency (ms) of each kernel on ``gpu``; a family without a model falls back to its roofline."""
        out = np.array([k.roofline_ms(gpu) for k in kernels], dtype=np.float64)
        by_family: dict[str, list[int]] = {}
        for i, k in enumerate(kernels):
            by_family.setdefault(k.family, []).append(i)
        for family, index in by_family.items():
            if family not in self.families:
                continue
            arrays, params = self.families[family]
            x = feature_matrix([kernels[i] for i in index], [gpu] * len(index))
            out[index] = out[index] * np.exp(predict_trees(x, arrays, params))
        return out

    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"{family}.{name}": torch.from_numpy(np.ascontiguousarray(array))
                   for family, (arrays, _) in self.families.items() for name, array in arrays.items()}
        save_file(tensors, str(directory / "kernels.safetensors"))
        manifest = {"kind": "gpu-kernels", "families": {f: p for f, (_, p) in self.families.items()},
                    "trained_on": self.trained_on, **(extra or {})}
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "KernelCostModel":
        directory = Path(directory)
        manifest = json.loads((directory / MANIFEST).read_text())
        tensors = load_file(str(directory / "kernels.safetensors"))
        families = {}
        for family, params in manifest["families"].items():
            arrays = {k.split(".", 1)[1]: v.numpy() for k, v in tensors.items() if k.startswith(family + ".")}
            families[family] = (arrays, params)
        return cls(families, list(manifest.get("trained_on", [])))


def fit_cost_model(measurements: Sequence[Measurement], specs: dict[str, GpuSpec], seed: int = 0,
                   max_iter: int = 400) -> KernelCostModel:
    """One histogram-GBT per family on log(latency / roofline); GPUs are named by their spec's key."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from ..trees import export_trees

    by_key = {s.key: s for s in specs.values()}
    model = KernelCostModel(trained_on=sorted({m.gpu for m in measurements}))
    for family in FAMILIES:
        rows = [m for m in measurements if m.kernel.family == family]
        if len(rows) < 50:
            continue
        gpus = [by_key[m.gpu] for m in rows]
        x = feature_matrix([m.kernel for m in rows], gpus)
        y = np.log([m.latency_ms / m.kernel.roofline_ms(g) for m, g in zip(rows, gpus)])
        trees = HistGradientBoostingRegressor(max_iter=max_iter, learning_rate=0.08, max_leaf_nodes=31,
                                              min_samples_leaf=20, l2_regularization=1.0, random_state=seed)
        model.families[family] = export_trees(trees.fit(x, y))
    return model
