"""The service's own bounds: byte-sized caches, plausible answers only, the Redis breaker."""
from __future__ import annotations

import math

import numpy as np
import pytest

from seernet.settings import DEFAULT_LIMITS
from server.breaker import CircuitBreaker
from server.core import check_answer
from server.errors import ServiceError
from server.lru import LRU


def test_lru_is_bounded_in_bytes_not_entries():
    cache: LRU[bytes] = LRU(10_000, len)
    for i in range(100):
        cache.put(f"k{i}", b"x" * 1000)
    assert cache.nbytes <= 10_000 and 0 < len(cache) < 10
    assert cache.get("k99") is not None and cache.get("k0") is None
    cache.put("huge", b"x" * 20_000)  # larger than the whole budget: not kept, evicts nothing
    assert cache.get("huge") is None and cache.get("k99") is not None


def test_graph_bytes_count_arrays_and_names():
    from seernet.graph import build_graph
    from tests.reliability import hostile_models as H

    small, large = build_graph(H.tiny()), build_graph(H.deep_chain(2000))
    assert large.nbytes > 100 * small.nbytes > 0


@pytest.mark.parametrize("values,ok", [
    ({"infer_time_ms": 3.0, "infer_mem_mb": 12.0}, True),
    ({"infer_time_ms": math.nan}, False),
    ({"infer_time_ms": math.inf}, False),
    ({"infer_time_ms": 1e29}, False),
    ({"infer_mem_mb": -1.0}, False),
    ({"infer_sm_util": 55.0}, True),
])
def test_only_finite_plausible_answers(values, ok):
    if ok:
        check_answer(values, DEFAULT_LIMITS)
    else:
        with pytest.raises(ServiceError):
            check_answer(values, DEFAULT_LIMITS)


def test_breaker_opens_after_a_failure_and_closes_on_success():
    breaker = CircuitBreaker("test", retry_after_s=60)
    assert breaker.available
    breaker.failed(ConnectionError("down"))
    assert not breaker.available and breaker.failures == 1 and "down" in breaker.last_error
    breaker.succeeded()
    assert breaker.available


def test_prediction_cache_weighs_answers():
    from server.cache import LocalLRUCache

    cache = LocalLRUCache(max_bytes=50_000)
    for i in range(1000):
        cache.put(f"key-{i}", {"values": {"infer_time_ms": float(i)}, "uncertainty": {"infer_time_ms": 0.1}})
    assert cache.nbytes <= 50_000 and len(cache) < 1000
    assert np.isclose(cache.get("key-999")["values"]["infer_time_ms"], 999.0)
