"""A CPU-time budget for one graph build, checked between steps.

Each step is bounded by the structural limits (``seernet.settings.Limits``);
the budget is the backstop for what those cannot foresee, and it counts this
thread's CPU only, so a busy neighbour never makes a request fail.
"""
from __future__ import annotations

import time

from .errors import BuildBudgetError


class CpuBudget:
    """``check(step)`` raises :class:`BuildBudgetError` once more than ``seconds`` of thread CPU were spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = time.thread_time()

    @property
    def spent_s(self) -> float:
        return time.thread_time() - self._start

    def check(self, step: str) -> None:
        if self.seconds > 0 and self.spent_s > self.seconds:
            raise BuildBudgetError(f"building the graph took over {self.seconds:g} CPU-seconds (at {step}); "
                                   "the limit is max_build_cpu_s")
