"""An NNI-style latency profiler backed by PerfSeer.

NNI's hardware-aware NAS strategies take a *profiler*: a callable that maps a
candidate to its latency.  ``PerfSeerProfiler`` is that callable, answered by
the service instead of a device.
"""
from __future__ import annotations

from typing import Any, Sequence

from .client import PerfSeerClient


class PerfSeerProfiler:
    def __init__(self, client: PerfSeerClient, metric: str = "infer_time_ms", batch_size: int = 1, device: str = "",
                 input_shape: Sequence[int] | None = None) -> None:
        self.client, self.metric, self.batch_size = client, metric, batch_size
        self.device, self.input_shape = device, input_shape

    def __call__(self, model: Any) -> float:
        """The predicted ``metric`` of ``model`` (anything ``PerfSeerClient.predict`` accepts)."""
        kwargs = {"input_shape": self.input_shape} if self.input_shape and hasattr(model, "forward") else {}
        result = self.client.predict(model, batch_size=self.batch_size, metrics=[self.metric], device=self.device,
                                     **kwargs)
        return result[self.metric]

    def profile_many(self, models: Sequence[Any]) -> list[float]:
        results = self.client.predict_many(models, batch_size=self.batch_size, metrics=[self.metric],
                                           device=self.device)
        return [r[self.metric] if not isinstance(r, Exception) else float("nan") for r in results]
