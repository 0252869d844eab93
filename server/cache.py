"""Prediction caches: Redis when configured (shared by replicas, with a TTL), else an in-process LRU.

A Redis outage must never fail a request: errors count as misses, and after
one the cache stays away from Redis for ``retry_after_s`` so requests do not
each wait on a dead connection.  It comes back by itself.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Protocol

import redis

from .lru import LRU

log = logging.getLogger(__name__)


class PredictionCache(Protocol):
    kind: str

    def get(self, key: str) -> dict | None: ...

    def put(self, key: str, value: dict) -> None: ...


class LocalLRUCache(LRU[dict]):
    """The embedded default when no Redis is configured: per process, lost on restart."""

    kind = "memory"

    def __init__(self, capacity: int = 100_000) -> None:
        super().__init__(capacity)


class RedisCache:
    kind = "redis"

    def __init__(self, client: redis.Redis, ttl_s: int = 7 * 24 * 3600, retry_after_s: float = 1.0,
                 prefix: str = "perfseer:pred:") -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.retry_after_s = retry_after_s
        self.prefix = prefix
        self._down_until = 0.0
        self.errors = 0

    @classmethod
    def from_url(cls, url: str, ttl_s: int = 7 * 24 * 3600) -> "RedisCache":
        client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25, decode_responses=True)
        return cls(client, ttl_s)

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if self.available:
            log.warning("Redis cache unavailable (%s); serving uncached for now", exc)
        self._down_until = time.monotonic() + self.retry_after_s

    def get(self, key: str) -> dict | None:
        if not self.available:
            return None
        try:
            raw = self.client.get(self.prefix + key)
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict) -> None:
        if not self.available:
            return
        try:
            self.client.set(self.prefix + key, json.dumps(value), ex=self.ttl_s)
        except redis.RedisError as exc:
            self._failed(exc)


def make_cache(redis_url: str, ttl_s: int, capacity: int) -> PredictionCache:
    return RedisCache.from_url(redis_url, ttl_s) if redis_url else LocalLRUCache(capacity)
