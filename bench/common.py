"""Benchmark helpers: pin to one core, repeat, report median and spread, save JSON."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

from profiler_worker.device_info import cpu_model  # every timing names the CPU it ran on

RESULTS = Path(__file__).resolve().parent / "results"


def pin_to_one_core() -> int:
    """Pin this process to its first allowed CPU and one thread: shared machines are noisy."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    return cpu


def repeat_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(samples, n=4)
    return {"median_ms": statistics.median(samples), "p25_ms": q[0], "p75_ms": q[2], "min_ms": min(samples),
            "max_ms": max(samples), "repeats": repeats}


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"cpu": cpu_model(), "python": platform.python_version(),
                           "cores": os.cpu_count()}, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
