"""The metric names every package uses: what is measured, stored, trained on, predicted and served."""
from __future__ import annotations

METRICS: tuple[str, ...] = ("infer_time_ms", "train_time_ms", "infer_mem_mb", "train_mem_mb", "infer_sm_util",
                            "train_sm_util")
CPU_METRICS: tuple[str, ...] = METRICS[:4]  # SM utilisation exists on GPUs only


def unit_of(metric: str) -> str:
    """``ms``, ``mb`` or ``util``: what bounds a plausible value of ``metric``."""
    return metric.rsplit("_", 1)[1]
