"""The worker loop: fetch a job, measure it in an isolated child, hand back the result.

A worker never dies of a bad model: every failure becomes a recorded status.
The optional writer role appends results to the dataset (one writer per
dataset); ``on_rows`` lets the retraining loop count what it added.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import redis

from .backend import resolve_device
from .measure import measure_job
from .queue import Delivery, JobQueue
from .settings import ProfileSettings
from .store import DatasetStore

log = logging.getLogger(__name__)


class _Heartbeat:
    def __init__(self, queue: JobQueue, consumer: str, delivery: Delivery) -> None:
        self._stop = threading.Event()
        interval = max(0.2, queue.claim_idle_ms / 3000.0)
        self._thread = threading.Thread(target=self._run, args=(queue, consumer, delivery, interval), daemon=True)

    def _run(self, queue: JobQueue, consumer: str, delivery: Delivery, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                queue.heartbeat(consumer, delivery)
            except redis.RedisError as exc:
                log.warning("heartbeat failed: %s", exc)

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Worker:
    def __init__(self, queue: JobQueue, settings: ProfileSettings, consumer: str | None = None,
                 measure: Callable = measure_job) -> None:
        self.queue = queue
        self.settings = settings
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._measure = measure
        self.stopping = False

    def run_once(self, block_ms: int = 1000) -> str | None:
        """Process at most one job; returns its outcome (``done``, ``retrying``, ``dead``) or None if idle."""
        delivery = self.queue.fetch(self.consumer, block_ms)
        if delivery is None:
            return None
        job = delivery.job
        if delivery.attempts > self.queue.max_attempts:
            return self.queue.fail(delivery, f"gave up after {delivery.attempts - 1} deliveries")
        log.info("measuring job %s (%s, batch %d, attempt %d)", job.job_id, job.family, job.batch_size, delivery.attempts)
        settings = self.settings
        if job.device != settings.device:
            log.warning("job %s asks for %s; this worker measures on %s", job.job_id, job.device, settings.device)
        with _Heartbeat(self.queue, self.consumer, delivery):
            result = self._measure(job, settings, self.consumer)
        if result.status == "failed":
            return self.queue.fail(delivery, result.reason)
        self.queue.complete(delivery, result)
        return "done"

    def run(self, max_jobs: int = 0, idle_exit_s: float = 0.0) -> int:
        done, idle_since = 0, time.monotonic()
        while not self.stopping and (max_jobs <= 0 or done < max_jobs):
            try:
                outcome = self.run_once()
            except redis.ConnectionError as exc:
                log.warning("Redis unreachable (%s); retrying in 1 s", exc)
                time.sleep(1.0)
                continue
            if outcome is None:
                if idle_exit_s and time.monotonic() - idle_since > idle_exit_s:
                    break
                continue
            done += 1
            idle_since = time.monotonic()
        return done


class ResultWriter:
    """Appends results from the stream to the dataset, exactly once per job id."""

    def __init__(self, queue: JobQueue, store: DatasetStore, consumer: str = "writer",
                 on_rows: Callable[[int], None] | None = None) -> None:
        self.queue, self.store, self.consumer, self.on_rows = queue, store, consumer, on_rows

    def drain_once(self, block_ms: int = 1000) -> int:
        batch = self.queue.read_results(self.consumer, block_ms=block_ms)
        added = sum(1 for _, result in batch if self.store.add(result))
        self.queue.ack_results([entry_id for entry_id, _ in batch])
        if added and self.on_rows:
            self.on_rows(added)
        return added


def run_worker(redis_url: str, device: str, dataset: Path, settings: ProfileSettings, max_jobs: int = 0,
               idle_exit_s: float = 0.0, write_results: bool = False, claim_idle_ms: int | None = None,
               max_attempts: int | None = None, retrain_after: int = 0, predictors: Path | None = None,
               predictor_name: str = "cpu") -> int:
    """``perfseer worker``: measure jobs; with ``write_results`` also run the dataset writer, and with
    ``retrain_after`` > 0 launch a retrain of ``predictors/predictor_name`` after that many new rows."""
    settings.device = resolve_device(device)
    kwargs = {k: v for k, v in (("claim_idle_ms", claim_idle_ms), ("max_attempts", max_attempts)) if v}
    queue = JobQueue.from_url(redis_url, **kwargs)
    worker = Worker(queue, settings)
    writer_thread, writer = None, None
    if write_results:
        on_rows = None
        if retrain_after > 0 and predictors is not None:
            from .retrain_trigger import RetrainTrigger, launch_retrain_process

            on_rows = RetrainTrigger(retrain_after, lambda: launch_retrain_process(dataset, predictors, predictor_name))
        writer = ResultWriter(queue, DatasetStore(dataset), on_rows=on_rows)

        def write_forever() -> None:
            while not worker.stopping:
                try:
                    writer.drain_once()
                except redis.ConnectionError:
                    time.sleep(1.0)

        writer_thread = threading.Thread(target=write_forever, daemon=True)
        writer_thread.start()

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current job, then stopping", signum)
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    done = worker.run(max_jobs, idle_exit_s)
    worker.stopping = True
    if writer_thread is not None and writer is not None:
        writer_thread.join(timeout=5)
        writer.drain_once(block_ms=10)
    log.info("worker %s stopped after %d job(s)", worker.consumer, done)
    return 0
