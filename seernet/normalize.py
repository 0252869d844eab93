"""Targets in log space, standardised with statistics of the training split only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TargetNormalizer:
    """``y → (log y − μ) / σ`` per metric; NaN (not measured) passes through as NaN."""

    metrics: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, metrics: tuple[str, ...], targets: np.ndarray) -> "TargetNormalizer":
        logs = np.log(np.where(targets > 0, targets, np.nan))
        mean = np.nanmean(logs, axis=0)
        std = np.nanstd(logs, axis=0)
        if np.any(~np.isfinite(mean)):
            missing = [m for m, v in zip(metrics, mean) if not np.isfinite(v)]
            raise ValueError(f"no training targets for metric(s) {missing}")
        return cls(tuple(metrics), mean.astype(np.float64), np.where(std < 1e-6, 1.0, std).astype(np.float64))

    def encode(self, targets: np.ndarray) -> np.ndarray:
        return (np.log(np.where(targets > 0, targets, np.nan)) - self.mean) / self.std

    def decode(self, encoded: np.ndarray) -> np.ndarray:
        return np.exp(np.asarray(encoded, np.float64) * self.std + self.mean)

    def decode_log_std(self, encoded_std: np.ndarray) -> np.ndarray:
        """An ensemble's spread in encoded units → spread of log(y), i.e. ≈ relative uncertainty."""
        return np.asarray(encoded_std, np.float64) * self.std

    def to_dict(self) -> dict:
        return {"metrics": list(self.metrics), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "TargetNormalizer":
        return cls(tuple(data["metrics"]), np.asarray(data["mean"], np.float64), np.asarray(data["std"], np.float64))
