"""Models the server has seen (by sha256) and their graphs (by model, batch and dims), both bounded in bytes.

With Redis configured, stripped model bytes are also kept there, so a hash
learned by one replica is usable on every replica; a Redis that is down or
hangs costs one short timeout per breaker period, never one per request.
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable

import redis

from seernet.graph import PerfGraph

from .breaker import CircuitBreaker
from .lru import LRU

def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ModelStore:
    def __init__(self, model_bytes: int, graph_bytes: int,
                 redis_client: redis.Redis | None = None, ttl_s: int = 7 * 24 * 3600) -> None:
        self._models: LRU[bytes] = LRU(model_bytes, len)
        self._graphs: LRU[PerfGraph] = LRU(graph_bytes, lambda g: g.nbytes)
        self._redis = redis_client
        self._ttl_s = ttl_s
        self.breaker = CircuitBreaker("model store")

    def remember(self, sha: str, stripped: bytes) -> None:
        self._models.put(sha, stripped)
        if self._redis is not None:
            self.breaker.call(lambda: self._redis.set(f"perfseer:model:{sha}", stripped, ex=self._ttl_s))

    def lookup(self, sha: str) -> bytes | None:
        found = self._models.get(sha)
        if found is None and self._redis is not None:
            found = self.breaker.call(lambda: self._redis.get(f"perfseer:model:{sha}"))
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
