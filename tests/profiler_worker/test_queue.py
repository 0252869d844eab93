"""The job queue against a real redis-server: round trip, crashed workers, dead letters, exactly-once."""
from __future__ import annotations

import time

import redis

from profiler_worker.job import ProfileJob
from profiler_worker.queue import JobQueue
from profiler_worker.settings import ProfileSettings
from profiler_worker.store import DatasetStore
from profiler_worker.worker import ResultWriter, Worker
from seernet.spaces import ModelConfig

TINY = ModelConfig("mlp", {"widths": [16], "activation": "relu", "norm": "none"}, batch_size=2, input_size=8)


def settings() -> ProfileSettings:
    return ProfileSettings(warmup=1, min_repeats=3, max_repeats=5, time_cap_s=0.1, timeout_s=120)


def make_queue(url: str, **kw) -> JobQueue:
    return JobQueue(redis.Redis.from_url(url, decode_responses=True), **kw)


def test_round_trip(redis_server, tmp_path):
    queue = make_queue(redis_server.url)
    store = DatasetStore(tmp_path / "d.sqlite")
    job_id = queue.submit(ProfileJob.for_config(TINY))
    assert queue.status(job_id)["status"] == "queued"
    assert Worker(queue, settings(), "w1").run_once() == "done"
    assert queue.status(job_id)["status"] == "done" and queue.pending_jobs() == 0
    assert ResultWriter(queue, store).drain_once() == 1
    rows = list(store.rows())
    assert len(rows) == 1 and rows[0]["job_id"] == job_id and rows[0]["infer_time_ms"] > 0
    assert Worker(queue, settings(), "w1").run_once(block_ms=50) is None


def test_result_delivered_twice_lands_once(redis_server, tmp_path):
    queue = make_queue(redis_server.url, claim_idle_ms=100)
    store = DatasetStore(tmp_path / "d.sqlite")
    queue.submit(ProfileJob.for_config(TINY))
    Worker(queue, settings(), "w1").run_once()
    # a writer reads the result, stores it, and dies before acking …
    (entry_id, result), = queue.read_results("writer-a")
    assert store.add(result)
    time.sleep(0.2)
    # … so another writer is handed the same result again, and stores nothing new
    assert ResultWriter(queue, store, "writer-b").drain_once() == 0
    assert store.count() == 1


def test_job_that_keeps_failing_is_dead_lettered(redis_server, tmp_path):
    queue = make_queue(redis_server.url, max_attempts=2)
    bad = ModelConfig("cnn", {"stem_width": 16, "stages": [{"style": "bogus", "depth": 1, "width": 16}]})
    job_id = queue.submit(ProfileJob.for_config(bad))
    worker = Worker(queue, settings(), "w1")
    assert worker.run_once() == "retrying"
    assert worker.run_once() == "dead"
    assert worker.run_once(block_ms=50) is None
    dead = queue.dead_letters()
    assert len(dead) == 1 and dead[0]["job_id"] == job_id and "bogus" in dead[0]["reason"]
    assert queue.status(job_id)["status"] == "dead" and queue.status(job_id)["attempts"] == "2"
    assert ResultWriter(queue, DatasetStore(tmp_path / "d.sqlite")).drain_once(block_ms=50) == 0
