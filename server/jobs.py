"""The service's side of the profiling queue: Redis as a dependency that fails well.

The queue is connected lazily and again after every outage, so a server
started while Redis was down takes jobs once it returns; while it is down,
job RPCs answer UNAVAILABLE (which clients retry) after one short timeout per
breaker period, never a traceback.  The stream's backlog is capped.
"""
from __future__ import annotations

import logging
import threading

import redis

from profiler_worker.job import ProfileJob
from profiler_worker.queue import JobQueue

from .breaker import CircuitBreaker
from .errors import ServiceError, exhausted, unavailable

log = logging.getLogger(__name__)


def redact(url: str) -> str:
    """A Redis URL without its password, for logs and messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


class JobService:
    def __init__(self, url: str, max_queued: int = 10_000, timeout_s: float = 2.0) -> None:
        self.url = url
        self.max_queued = max_queued
        self._client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout_s,
                                            socket_connect_timeout=timeout_s)
        self._queue: JobQueue | None = None
        self._lock = threading.Lock()
        self.breaker = CircuitBreaker("job queue", retry_after_s=2.0)

    def _down(self, exc: BaseException | None = None) -> ServiceError:
        reason = f"{type(exc).__name__}" if exc is not None else self.breaker.last_error.split(":")[0]
        return unavailable(f"Redis at {redact(self.url)} is unreachable ({reason}); profiling jobs are unavailable "
                           "until it returns (retry later)")

    def _queue_now(self) -> JobQueue:
        with self._lock:
            if self._queue is None:
                self._queue = JobQueue(self._client)  # creates the stream and groups if Redis lost them
            return self._queue

    def _run(self, fn):
        if not self.breaker.available:
            raise self._down()
        try:
            try:
                result = fn(self._queue_now())
            except redis.ResponseError:  # a Redis restarted without persistence has no stream or group: recreate
                self._queue = None
                result = fn(self._queue_now())
        except redis.RedisError as exc:
            self.breaker.failed(exc)
            raise self._down(exc) from None
        self.breaker.succeeded()
        return result

    def connected(self) -> bool:
        """Try once now (for the start-up line); False leaves the breaker open for a retry later."""
        try:
            self._run(lambda q: q.redis.ping())
            return True
        except ServiceError:
            return False

    def submit(self, job: ProfileJob) -> str:
        def submit(queue: JobQueue) -> str:
            backlog = queue.backlog()
            if backlog >= self.max_queued:
                raise exhausted(f"{backlog:,} profiling jobs are waiting, the limit is {self.max_queued:,} "
                                "(max_queued_jobs); retry later")
            return queue.submit(job)

        return self._run(submit)

    def status(self, job_id: str) -> dict | None:
        return self._run(lambda q: q.status(job_id))
