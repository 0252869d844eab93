"""A crash, hang or out-of-memory in the measuring child is a recorded failure, never a dead worker."""
from __future__ import annotations

from profiler_worker.isolation import run_isolated
from tests.profiler_worker import children


def test_result_comes_back():
    outcome = run_isolated(children.ok, timeout_s=60, memory_cap_mb=500)
    assert outcome.ok and outcome.result == {"answer": 42}


def test_out_of_memory_is_recorded():
    outcome = run_isolated(children.allocate_mb, (400,), timeout_s=60, memory_cap_mb=100)
    assert not outcome.ok and outcome.status == "oom" and "100 MB cap" in outcome.reason


def test_timeout_is_recorded():
    outcome = run_isolated(children.sleep_s, (30,), timeout_s=1.0, memory_cap_mb=500)
    assert not outcome.ok and outcome.status == "timeout" and "1 s timeout" in outcome.reason
    assert outcome.wall_s < 10


def test_crash_is_recorded():
    outcome = run_isolated(children.abort, timeout_s=60, memory_cap_mb=500)
    assert not outcome.ok and outcome.status == "crashed" and "SIGABRT" in outcome.reason


def test_exception_is_recorded_with_its_message():
    outcome = run_isolated(children.raise_value_error, timeout_s=60, memory_cap_mb=500)
    assert not outcome.ok and outcome.status == "error" and "model config is broken" in outcome.reason
