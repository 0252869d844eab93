"""The noise floor: how much two measurements of the same config disagree.

No predictor can honestly claim to be closer to "the" latency than the
measurements are to each other; evaluation reports its errors beside this.
"""
from __future__ import annotations

import statistics

from .job import METRICS
from .store import DatasetStore


def relative_differences(store: DatasetStore) -> dict[str, list[float]]:
    first = {row["job_id"]: row for row in store.rows("measurements")}
    diffs: dict[str, list[float]] = {m: [] for m in METRICS}
    for again in store.rows("remeasurements"):
        base = first.get(again["job_id"])
        if base is None:
            continue
        for metric in METRICS:
            a, b = base.get(metric), again.get(metric)
            if a is not None and b is not None and a > 0:
                diffs[metric].append(abs(b - a) / a)
    return diffs


def noise_floor_report(store: DatasetStore) -> dict:
    """Per metric: pairs compared, median / mean / 90th-percentile relative difference (percent)."""
    report: dict = {"pairs": 0, "metrics": {}}
    for metric, values in relative_differences(store).items():
        if not values:
            continue
        values.sort()
        report["pairs"] = max(report["pairs"], len(values))
        report["metrics"][metric] = {
            "pairs": len(values),
            "median_pct": 100 * statistics.median(values),
            "mean_pct": 100 * statistics.fmean(values),
            "p90_pct": 100 * values[int(0.9 * (len(values) - 1))],
        }
    return report
