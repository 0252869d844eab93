"""Robust repeat timing: warm-up, repeat until the median settles, report the spread."""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

from .settings import ProfileSettings


@dataclass(frozen=True)
class TimingStats:
    median_ms: float
    mean_ms: float
    min_ms: float
    cv: float  # coefficient of variation: stdev / mean
    iqr_ms: float
    repeats: int
    stopped_because: str

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples_ms: list[float], stopped_because: str) -> TimingStats:
    mean = statistics.fmean(samples_ms)
    stdev = statistics.stdev(samples_ms) if len(samples_ms) > 1 else 0.0
    quartiles = statistics.quantiles(samples_ms, n=4) if len(samples_ms) > 1 else [samples_ms[0]] * 3
    return TimingStats(
        median_ms=statistics.median(samples_ms),
        mean_ms=mean,
        min_ms=min(samples_ms),
        cv=stdev / mean if mean > 0 else 0.0,
        iqr_ms=quartiles[2] - quartiles[0],
        repeats=len(samples_ms),
        stopped_because=stopped_because,
    )


def time_repeated(step: Callable[[], object], settings: ProfileSettings,
                  timer: Callable[[Callable[[], object]], float] | None = None) -> TimingStats:
    """Time ``step`` per the settings' repeat policy.

    ``timer`` measures one call in milliseconds; the default uses the wall
    clock, the GPU path passes one that uses CUDA events.
    """
    measure = timer or _wall_clock_ms
    for _ in range(settings.warmup):
        step()
    samples: list[float] = []
    started = time.perf_counter()
    reason = "max_repeats"
    while len(samples) < settings.max_repeats:
        samples.append(measure(step))
        n = len(samples)
        if n < settings.min_repeats and not (n >= settings.min_repeats_slow and samples[0] >= settings.slow_ms):
            continue
        if n >= 2 * settings.min_repeats:
            now, before = statistics.median(samples), statistics.median(samples[:-settings.min_repeats])
            if now > 0 and abs(now - before) / now <= settings.stable_tolerance:
                reason = "stable"
                break
        if time.perf_counter() - started >= settings.time_cap_s:
            reason = "time_cap"
            break
    return summarize(samples, reason)


def _wall_clock_ms(step: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    step()
    return (time.perf_counter() - t0) * 1000.0
