"""A worker killed (SIGKILL) mid-job: another worker re-claims the job and its result lands exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from profiler_worker.job import ProfileJob
from profiler_worker.store import DatasetStore
from profiler_worker.worker import ResultWriter, Worker
from tests.conftest import ROOT
from tests.profiler_worker.test_queue import TINY, make_queue, settings


def test_worker_killed_mid_job_is_taken_over_and_lands_once(redis_server, tmp_path):
    queue = make_queue(redis_server.url, claim_idle_ms=1500)
    store = DatasetStore(tmp_path / "d.sqlite")
    job_id = queue.submit(ProfileJob.for_config(TINY))
    env = {**os.environ, "PERFSEER_PROFILE_MIN_REPEATS": "10000000", "PERFSEER_PROFILE_MAX_REPEATS": "10000000",
           "PERFSEER_PROFILE_TIME_CAP_S": "600", "PYTHONPATH": str(ROOT)}
    slow = subprocess.Popen([sys.executable, "-m", "perfseer.cli", "worker", "--redis", redis_server.url,
                             "--max-jobs", "1", "--claim-idle-ms", "1500"], env=env, cwd=ROOT,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and (queue.status(job_id) or {}).get("status") != "running":
            time.sleep(0.1)
        assert queue.status(job_id)["status"] == "running"
        time.sleep(2.5)  # the heartbeat keeps a live worker's job from being taken over
        assert Worker(queue, settings(), "rescuer").run_once(block_ms=50) is None
        os.killpg(slow.pid, signal.SIGKILL)  # the worker and its measuring child
        slow.wait(timeout=10)
    finally:
        if slow.poll() is None:
            os.killpg(slow.pid, signal.SIGKILL)
    rescuer = Worker(queue, settings(), "rescuer")
    deadline, outcome = time.time() + 30, None
    while outcome is None and time.time() < deadline:
        outcome = rescuer.run_once(block_ms=200)
    assert outcome == "done"
    status = queue.status(job_id)
    assert status["status"] == "done" and status["worker"] == "rescuer" and status["attempts"] == "2"
    writer = ResultWriter(queue, store)
    writer.drain_once()
    writer.drain_once(block_ms=50)
    assert [r["job_id"] for r in store.rows()] == [job_id]
