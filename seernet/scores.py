"""Accuracy figures used everywhere we report: MAPE, RMSPE, ±5 %/±10 % accuracy, Spearman ρ, Kendall τ."""
from __future__ import annotations

import numpy as np
from scipy import stats


def score(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    keep = np.isfinite(predicted) & np.isfinite(measured) & (measured > 0)
    p, m = predicted[keep], measured[keep]
    if len(m) == 0:
        return {"n": 0}
    rel = (p - m) / m
    result = {
        "n": int(len(m)),
        "mape": float(100 * np.mean(np.abs(rel))),
        "rmspe": float(100 * np.sqrt(np.mean(rel**2))),
        "acc5": float(100 * np.mean(np.abs(rel) <= 0.05)),
        "acc10": float(100 * np.mean(np.abs(rel) <= 0.10)),
    }
    if len(m) > 2 and np.ptp(m) > 0 and np.ptp(p) > 0:
        result["spearman"] = float(stats.spearmanr(p, m).statistic)
        result["kendall"] = float(stats.kendalltau(p, m).statistic)
    return result
