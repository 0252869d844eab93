"""A circuit breaker for Redis: after a failure, stay away for a while instead of waiting on it per request.

Every Redis client in the server has short socket timeouts; the breaker
makes a dead or hanging Redis cost one timeout per ``retry_after_s``, not one
per request, and closes again by itself on the first success after that.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, TypeVar

import redis

T = TypeVar("T")

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(self, name: str, retry_after_s: float = 1.0) -> None:
        self.name = name
        self.retry_after_s = retry_after_s
        self.failures = 0
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.last_error = ""

    @property
    def available(self) -> bool:
        """Closed (use Redis), or open long enough that one call may try again."""
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self.available:
                log.warning("%s: Redis unavailable (%s); retrying in %.1f s", self.name, exc, self.retry_after_s)
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            self._down_until = time.monotonic() + self.retry_after_s

    def succeeded(self) -> None:
        if self._down_until:
            with self._lock:
                if self._down_until:
                    log.info("%s: Redis is back", self.name)
                self._down_until = 0.0

    def call(self, fn: Callable[[], T]) -> T | None:
        """``fn()`` unless the breaker is open; a Redis error opens it and gives None (callers treat None as
        "not there", so an outage is a miss, never a failed request)."""
        if not self.available:
            return None
        try:
            result = fn()
        except redis.RedisError as exc:
            self.failed(exc)
            return None
        self.succeeded()
        return result
