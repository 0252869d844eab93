"""BRP-NAS's LatBench (desktop CPU, 15,284 NAS-Bench-201 cells): external data for evaluation only.

Never used to train the shipped predictors; ``perfseer evaluate --latbench``
and ``bench/latbench.py`` fit on a few hundred cells and test on the rest.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .settings import shared_data_dir
from .spaces import ModelConfig

LATBENCH_FILE = "latbench/desktop-cpu-i7-7820x-fp32.csv"


def latbench_csv() -> Path:
    return shared_data_dir() / LATBENCH_FILE


@dataclass(frozen=True)
class LatBenchRow:
    arch_str: str
    latency_ms: float

    def config(self, batch_size: int = 1, input_size: int = 32) -> ModelConfig:
        return ModelConfig("nasbench201", {"arch_str": self.arch_str}, batch_size, input_size)


def split_order(rows: list[LatBenchRow], n_train: int, seed: int = 0) -> tuple[list[LatBenchRow], list[LatBenchRow]]:
    """``n_train`` random training cells and *all* other cells, the latter in a seeded random order
    (so a prefix of the test order is itself a uniform random sample)."""
    import random

    order = list(rows)
    random.Random(f"latbench:{seed}").shuffle(order)
    return order[:n_train], order[n_train:]


def load_latbench(path: str | Path | None = None) -> list[LatBenchRow]:
    path = Path(path) if path else latbench_csv()
    if not path.exists():
        raise FileNotFoundError(f"LatBench CSV not found at {path} (expected ../shared/data/latbench/)")
    with path.open(newline="") as f:
        return [LatBenchRow(r["arch_str"], float(r["latency_ms"])) for r in csv.DictReader(f)]
