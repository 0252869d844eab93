"""Prediction caches: Redis when configured (shared by replicas, with a TTL), else an in-process LRU.

A Redis outage must never fail a request: errors count as misses, and after
one the cache stays away from Redis for ``retry_after_s`` so requests do not
each wait on a dead connection.  It comes back by itself.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Protocol

import redis

log = logging.getLogger(__name__)


class PredictionCache(Protocol):
    kind: str

    def get(self, key: str) -> dict | None: ...

    def put(self, key: str, value: dict) -> None: ...


class LocalLRUCache:
    kind = "memory"

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: dict) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


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
