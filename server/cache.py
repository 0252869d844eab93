"""Prediction caches: Redis when configured (shared by replicas, with a TTL), else an in-process LRU.

A Redis outage must never fail a request: errors count as misses, and after
one the cache stays away from Redis for ``retry_after_s`` (a circuit breaker)
so requests do not each wait on a dead connection.  It comes back by itself.
Only finite answers are ever stored (the service checks before ``put``).
"""
from __future__ import annotations

import json
from typing import Protocol

import redis

from .breaker import CircuitBreaker
from .lru import LRU

class PredictionCache(Protocol):
    kind: str

    def get(self, key: str) -> dict | None: ...

    def put(self, key: str, value: dict) -> None: ...

    def get_many(self, keys: list[str]) -> list[dict | None]: ...

    def put_many(self, entries: list[tuple[str, dict]]) -> None: ...


def _answer_bytes(value: dict) -> int:
    """Memory of one cached answer: two small dicts of metric → float."""
    return 120 * sum(len(part) for part in value.values() if isinstance(part, dict)) + 500


class LocalLRUCache(LRU[dict]):
    """The embedded default when no Redis is configured: per process, lost on restart, bounded in bytes."""

    kind = "memory"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, _answer_bytes)

    def get_many(self, keys: list[str]) -> list[dict | None]:
        return [self.get(key) for key in keys]

    def put_many(self, entries: list[tuple[str, dict]]) -> None:
        for key, value in entries:
            self.put(key, value)


class RedisCache:
    kind = "redis"

    def __init__(self, client: redis.Redis, ttl_s: int = 7 * 24 * 3600, retry_after_s: float = 1.0,
                 prefix: str = "perfseer:pred:") -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.retry_after_s = retry_after_s
        self.prefix = prefix
        self.breaker = CircuitBreaker("prediction cache", retry_after_s)

    @classmethod
    def from_url(cls, url: str, ttl_s: int = 7 * 24 * 3600, timeout_s: float = 0.25) -> "RedisCache":
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                      decode_responses=True)
        return cls(client, ttl_s)

    @property
    def available(self) -> bool:
        return self.breaker.available

    @property
    def errors(self) -> int:
        return self.breaker.failures

    def get(self, key: str) -> dict | None:
        raw = self.breaker.call(lambda: self.client.get(self.prefix + key))
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict) -> None:
        self.breaker.call(lambda: self.client.set(self.prefix + key, json.dumps(value), ex=self.ttl_s))

    def get_many(self, keys: list[str]) -> list[dict | None]:
        """One round trip (MGET) for a batch request's items: per item, a GET each cost ~0.2 ms of the
        service's CPU, more than building a NAS-Bench-201 graph."""
        if not keys:
            return []
        raw = self.breaker.call(lambda: self.client.mget([self.prefix + key for key in keys]))
        return [json.loads(r) if r else None for r in raw] if raw is not None else [None] * len(keys)

    def put_many(self, entries: list[tuple[str, dict]]) -> None:
        """One pipelined round trip for a batch's new answers."""
        if not entries:
            return

        def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for key, value in entries:
                pipe.set(self.prefix + key, json.dumps(value), ex=self.ttl_s)
            pipe.execute()

        self.breaker.call(write)


def make_cache(redis_url: str, ttl_s: int, max_bytes: int, timeout_s: float = 0.25) -> PredictionCache:
    return RedisCache.from_url(redis_url, ttl_s, timeout_s) if redis_url else LocalLRUCache(max_bytes)
