"""Prometheus metrics: requests by method and code, latency, cache hits (exposed with --metrics-port)."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("perfseer_requests_total", "RPCs handled", ["method", "code"])
LATENCY = Histogram("perfseer_request_seconds", "RPC latency", ["method"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))
CACHE = Counter("perfseer_cache_total", "prediction cache lookups", ["result"])


def observe(method: str, code: str, seconds: float) -> None:
    REQUESTS.labels(method, code).inc()
    LATENCY.labels(method).observe(seconds)
