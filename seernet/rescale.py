"""A trained predictor moved to a new device by one line in log space: ``log y = a + b·log ŷ``.

Why a candidate of its own: a new CPU mostly runs every model a similar factor
faster or slower (the shipped predictor was 1.22× off on an Intel Xeon, yet
ranked its held-out rows at Kendall 0.94), and two numbers fitted on ten rows
cannot overfit the way a fine-tuned network can on the same ten.  ``fit`` scores
it beside the others and ships it when it wins.  The slope is shrunk towards 1
(a pure scale) so a handful of rows cannot tilt it far.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import Sample
from .predictor import MANIFEST, Predictor, write_manifest

SLOPE_PRIOR = 0.5  # ridge weight per row pulling the slope b towards 1


@dataclass
class RescaledPredictor:
    """``base``'s ``metric`` through ``exp(a + b·log ŷ)``; the other metrics are not served (not calibrated)."""

    base: Predictor
    metric: str
    a: float
    b: float

    def predict(self, samples: Sequence[Sample]) -> np.ndarray:
        raw = np.array([p.values[self.metric] for p in self.base.predict_graphs([s.graph for s in samples])])
        return np.exp(self.a + self.b * np.log(raw))

    def save(self, directory: Path, manifest_fields: dict) -> Path:
        """The base's weights copied beside a manifest that serves ``metric`` only, through the line."""
        if self.base.directory is None:
            raise ValueError("the base predictor has no directory to copy its weights from")
        directory.mkdir(parents=True, exist_ok=True)
        for k in range(len(self.base.members)):
            shutil.copyfile(self.base.directory / f"member-{k}.safetensors", directory / f"member-{k}.safetensors")
        base = json.loads((self.base.directory / MANIFEST).read_text())
        a, b = self.a, self.b
        if self.metric in self.base.log_affine:  # the base is itself rescaled: compose the two lines
            a0, b0 = self.base.log_affine[self.metric]
            a, b = a + b * a0, b * b0
        manifest = {**base, **manifest_fields, "metrics": [self.metric],
                    "network_metrics": list(base.get("network_metrics", base["metrics"])),
                    "log_affine": {self.metric: {"a": a, "b": b}},
                    "rescaled_from": {"name": base.get("name"), "version": base.get("version"),
                                      "device_key": base.get("device_key")}}
        return write_manifest(directory, manifest)


def fit_rescaled(base: Predictor, samples: Sequence[Sample], metric: str) -> RescaledPredictor:
    """Least squares of log measured on log predicted, the slope shrunk towards 1."""
    if metric not in base.metrics:
        raise ValueError(f"{metric} is not predicted by {base.name}")
    x = np.log([p.values[metric] for p in base.predict_graphs([s.graph for s in samples])])
    y = np.log([s.targets[metric] for s in samples])
    prior = SLOPE_PRIOR * len(x)
    xc, yc = x - x.mean(), y - y.mean()
    b = float((xc @ yc + prior) / (xc @ xc + prior))
    return RescaledPredictor(base, metric, float(y.mean() - b * x.mean()), b)


__all__ = ["RescaledPredictor", "fit_rescaled"]
