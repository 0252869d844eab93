"""Models the server has seen (by sha256) and their graphs (by model, batch and dims), both LRU-bounded.

With Redis configured, stripped model bytes are also kept there, so a hash
learned by one replica is usable on every replica.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Callable

import redis

from seernet.graph import PerfGraph

from .lru import LRU

log = logging.getLogger(__name__)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ModelStore:
    def __init__(self, capacity: int = 4096, redis_client: redis.Redis | None = None, ttl_s: int = 7 * 24 * 3600) -> None:
        self._models: LRU[bytes] = LRU(capacity)
        self._graphs: LRU[PerfGraph] = LRU(4 * capacity)
        self._redis = redis_client
        self._ttl_s = ttl_s

    def remember(self, sha: str, stripped: bytes) -> None:
        self._models.put(sha, stripped)
        if self._redis is not None:
            try:
                self._redis.set(f"perfseer:model:{sha}", stripped, ex=self._ttl_s)
            except redis.RedisError as exc:
                log.debug("model not shared through Redis: %s", exc)

    def lookup(self, sha: str) -> bytes | None:
        found = self._models.get(sha)
        if found is None and self._redis is not None:
            try:
                found = self._redis.get(f"perfseer:model:{sha}")
            except redis.RedisError:
                found = None
            if found is not None:
                self._models.put(sha, found)
        return found

    def graph(self, sha: str, batch_size: int, dims: dict[str, int], training: bool,
              build: Callable[[], PerfGraph]) -> PerfGraph:
        key = f"{sha}:{batch_size}:{int(training)}:{json.dumps(dims, sort_keys=True)}"
        graph = self._graphs.get(key)
        if graph is None:
            graph = build()
            self._graphs.put(key, graph)
        return graph
