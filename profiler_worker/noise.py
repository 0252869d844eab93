"""The noise floor: how much two measurements of the same config disagree.

No predictor can honestly claim to be closer to "the" latency than the
measurements are to each other; evaluation reports its errors beside this.
Re-measurements come in rounds (one ``--remeasure`` run each, perhaps taken
while the machine was busy): the report gives each round's own figures too, so
a noisy round is visible instead of hidden in the pooled median.
"""
from __future__ import annotations

import statistics
import time

from .job import METRICS
from .store import DatasetStore

ROUND_GAP_S = 1800.0  # re-measurements further apart than this belong to different rounds


def paired_differences(store: DatasetStore) -> list[tuple[float, dict[str, float]]]:
    """(time of the re-measurement, {metric: |second − first| / first}) for each config measured twice.

    Only pairs whose first measurement is still in ``measurements`` count: a
    quarantined original is not a measurement we stand by.
    """
    first = {row["job_id"]: row for row in store.rows("measurements")}
    pairs = []
    for again in store.rows("remeasurements"):
        base = first.get(again["job_id"])
        if base is None:
            continue
        diffs = {metric: abs(again[metric] - base[metric]) / base[metric] for metric in METRICS
                 if base.get(metric) is not None and again.get(metric) is not None and base[metric] > 0}
        pairs.append((float(again["measured_at"]), diffs))
    return sorted(pairs, key=lambda pair: pair[0])


def _by_metric(pairs: list[tuple[float, dict[str, float]]]) -> dict[str, list[float]]:
    diffs: dict[str, list[float]] = {m: [] for m in METRICS}
    for _, pair in pairs:
        for metric, value in pair.items():
            diffs[metric].append(value)
    return diffs


def relative_differences(store: DatasetStore, since: float | None = None) -> dict[str, list[float]]:
    """{metric: relative differences} over the pairs re-measured at or after ``since`` (all when None)."""
    return _by_metric([p for p in paired_differences(store) if since is None or p[0] >= since])


def _summary(values_by_metric: dict[str, list[float]]) -> dict:
    report: dict = {"pairs": 0, "metrics": {}}
    for metric, values in values_by_metric.items():
        if not values:
            continue
        values = sorted(values)
        report["pairs"] = max(report["pairs"], len(values))
        report["metrics"][metric] = {
            "pairs": len(values),
            "median_pct": 100 * statistics.median(values),
            "mean_pct": 100 * statistics.fmean(values),
            "p90_pct": 100 * values[int(0.9 * (len(values) - 1))],
        }
    return report


def _rounds(pairs: list[tuple[float, dict[str, float]]]) -> list[list[tuple[float, dict[str, float]]]]:
    rounds: list[list[tuple[float, dict[str, float]]]] = []
    for pair in pairs:
        if not rounds or pair[0] - rounds[-1][-1][0] > ROUND_GAP_S:
            rounds.append([])
        rounds[-1].append(pair)
    return rounds


def noise_floor_report(store: DatasetStore, since: float | None = None) -> dict:
    """Per metric: pairs compared, median / mean / 90th-percentile relative difference (percent).

    The headline figures use the re-measurements taken at or after ``since``
    (all when None): rounds taken under other conditions than the dataset's
    rows measure a drift, not the noise.  Every round is listed either way.
    """
    report = _summary(relative_differences(store, since))
    report["since"] = _iso(since) if since is not None else None
    report["rounds"] = []
    for members in _rounds(paired_differences(store)):
        summary = _summary(_by_metric(members))
        summary["started"] = _iso(members[0][0])
        report["rounds"].append(summary)
    return report


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
