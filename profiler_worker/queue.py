"""Profiling jobs on Redis Streams.

* ``perfseer:jobs`` — jobs, read by consumer group ``workers``.  A worker acks a
  job only after its result is in ``perfseer:results``; while it measures, a
  heartbeat re-claims the entry so its idle time stays low.  Entries idle past
  ``claim_idle_ms`` belong to dead workers and are taken over with XAUTOCLAIM.
* ``perfseer:results`` — results, read by consumer group ``writers``: one
  writer appends them to the dataset (exactly once per job id: the store's
  primary key) and acks after the insert.
* ``perfseer:dead`` — jobs that failed ``max_attempts`` times, with the reason.
* ``perfseer:job:<id>`` — a hash with the job's status for ``GetJob``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from .job import ProfileJob, ProfileResult

JOB_TTL_S = 14 * 24 * 3600


@dataclass
class QueueNames:
    prefix: str = "perfseer"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def results(self) -> str:
        return f"{self.prefix}:results"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"


@dataclass
class Delivery:
    """One job handed to a worker: the stream entry id is what gets acked."""

    entry_id: str
    job: ProfileJob
    attempts: int


class JobQueue:
    WORKERS = "workers"
    WRITERS = "writers"

    def __init__(self, client: redis.Redis, prefix: str = "perfseer", claim_idle_ms: int = 300_000,
                 max_attempts: int = 3) -> None:
        self.redis = client
        self.names = QueueNames(prefix)
        self.claim_idle_ms = claim_idle_ms
        self.max_attempts = max_attempts
        self._ensure_groups()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "JobQueue":
        if not url:
            raise ValueError("no Redis URL given (--redis or PERFSEER_REDIS_URL)")
        return cls(redis.Redis.from_url(url, decode_responses=True), **kwargs)

    @property
    def jobs_stream(self) -> str:
        return self.names.jobs

    def _ensure_groups(self) -> None:
        for stream, group in ((self.names.jobs, self.WORKERS), (self.names.results, self.WRITERS)):
            try:
                self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # ------------------------------------------------------------------ producers
    def submit(self, job: ProfileJob) -> str:
        """Queue ``job``; returns its id.  Its status hash starts as ``queued``."""
        pipe = self.redis.pipeline()
        pipe.hset(self.names.job(job.job_id), mapping={"status": "queued", "attempts": 0, "device": job.device,
                                                        "family": job.family, "submitted_at": time.time()})
        pipe.expire(self.names.job(job.job_id), JOB_TTL_S)
        pipe.xadd(self.names.jobs, job.to_fields())
        pipe.execute()
        return job.job_id

    def status(self, job_id: str) -> dict[str, str] | None:
        data = self.redis.hgetall(self.names.job(job_id))
        return data or None

    def _set_status(self, job_id: str, **fields: Any) -> None:
        self.redis.hset(self.names.job(job_id), mapping={k: v if isinstance(v, (int, float, str)) else json.dumps(v)
                                                          for k, v in fields.items()})

    # ------------------------------------------------------------------ workers
    def fetch(self, consumer: str, block_ms: int = 1000) -> Delivery | None:
        """A job for ``consumer``: first one abandoned by a dead worker, else a new one."""
        _, claimed, _ = self.redis.xautoclaim(self.names.jobs, self.WORKERS, consumer, self.claim_idle_ms,
                                              start_id="0-0", count=1)
        entries = claimed
        if not entries:
            response = self.redis.xreadgroup(self.WORKERS, consumer, {self.names.jobs: ">"}, count=1, block=block_ms)
            entries = response[0][1] if response else []
        for entry_id, fields in entries:
            if not fields:  # entry trimmed away while pending
                self.redis.xack(self.names.jobs, self.WORKERS, entry_id)
                continue
            job = ProfileJob.from_fields(fields)
            attempts = int(self.redis.hincrby(self.names.job(job.job_id), "attempts", 1))
            self._set_status(job.job_id, status="running", worker=consumer, started_at=time.time())
            return Delivery(entry_id, job, attempts)
        return None

    def heartbeat(self, consumer: str, delivery: Delivery) -> None:
        """Reset the entry's idle time so live, slow measurements are not taken over."""
        self.redis.xclaim(self.names.jobs, self.WORKERS, consumer, 0, [delivery.entry_id], justid=True)

    def complete(self, delivery: Delivery, result: ProfileResult) -> None:
        """Store the result, then ack: a crash in between re-delivers, and the writer de-duplicates."""
        self.redis.xadd(self.names.results, {"job_id": result.job_id, "result": result.to_json()})
        self._set_status(result.job_id, status="done", finished_at=time.time(), result_status=result.status,
                         metrics=json.dumps(result.metrics), reason=result.reason)
        self.redis.xack(self.names.jobs, self.WORKERS, delivery.entry_id)

    def fail(self, delivery: Delivery, reason: str) -> str:
        """Retry the job later, or dead-letter it after ``max_attempts``; returns the new status."""
        pipe = self.redis.pipeline()
        if delivery.attempts >= self.max_attempts:
            pipe.xadd(self.names.dead, {**delivery.job.to_fields(), "reason": reason, "attempts": delivery.attempts})
            status = "dead"
        else:
            pipe.xadd(self.names.jobs, delivery.job.to_fields())
            status = "retrying"
        pipe.hset(self.names.job(delivery.job.job_id), mapping={"status": status, "reason": reason})
        pipe.xack(self.names.jobs, self.WORKERS, delivery.entry_id)
        pipe.execute()
        return status

    # ------------------------------------------------------------------ writer
    def read_results(self, consumer: str, count: int = 50, block_ms: int = 1000) -> list[tuple[str, ProfileResult]]:
        _, claimed, _ = self.redis.xautoclaim(self.names.results, self.WRITERS, consumer, self.claim_idle_ms,
                                              start_id="0-0", count=count)
        entries = list(claimed)
        if not entries:
            response = self.redis.xreadgroup(self.WRITERS, consumer, {self.names.results: ">"}, count=count,
                                             block=block_ms)
            entries = response[0][1] if response else []
        return [(entry_id, ProfileResult.from_json(fields["result"])) for entry_id, fields in entries if fields]

    def ack_results(self, entry_ids: list[str]) -> None:
        if entry_ids:
            self.redis.xack(self.names.results, self.WRITERS, *entry_ids)

    def dead_letters(self) -> list[dict[str, str]]:
        return [fields for _, fields in self.redis.xrange(self.names.dead)]

    def backlog(self) -> int:
        """Jobs not yet finished: never delivered (the group's lag) plus delivered and not acked."""
        for group in self.redis.xinfo_groups(self.names.jobs):
            if group.get("name") == self.WORKERS:
                lag = group.get("lag")
                undelivered = int(lag) if lag is not None else int(self.redis.xlen(self.names.jobs))
                return undelivered + int(group.get("pending", 0))
        return int(self.redis.xlen(self.names.jobs))

    def pending_jobs(self) -> int:
        return int(self.redis.xpending(self.names.jobs, self.WORKERS)["pending"])
