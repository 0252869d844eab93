"""Run one measurement in a child process so a crash, hang or OOM cannot kill the worker.

Children come from a *forkserver* that has imported torch and onnxruntime but
run no op: forking is cheap (no re-import per job) and safe (no OpenMP thread
pool is copied mid-flight, which is what makes plain ``fork`` deadlock).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import psutil

_PRELOAD = ["torch", "torch.optim", "torch._dynamo", "torch.onnx", "onnxruntime", "onnx", "numpy", "seernet.spaces", "seernet.export",
            "profiler_worker.probes"]
_context: Any = None


def _get_context() -> Any:
    global _context
    if _context is None:
        _context = mp.get_context("forkserver")
        _context.set_forkserver_preload(_PRELOAD)
    return _context


@dataclass(frozen=True)
class ChildOutcome:
    ok: bool
    result: dict | None = None
    status: str = "ok"  # ok | error | timeout | oom | crashed
    reason: str = ""
    wall_s: float = 0.0


def _child_main(conn: Any, fn: Callable[..., dict], args: tuple, affinity: tuple[int, ...] | None) -> None:
    try:
        if affinity:
            os.sched_setaffinity(0, affinity)
        conn.send(("started", psutil.Process().memory_info().rss))
        conn.send(("ok", fn(*args)))
    except MemoryError as exc:
        conn.send(("oom", f"MemoryError: {exc}"))
    except BaseException as exc:  # report everything: the parent decides what it means
        text = f"{type(exc).__name__}: {exc}"
        status = "oom" if "can't allocate memory" in text or "out of memory" in text.lower() else "error"
        conn.send((status, text + "\n" + traceback.format_exc(limit=4)))
    finally:
        conn.close()


def run_isolated(fn: Callable[..., dict], args: tuple = (), *, timeout_s: float, memory_cap_mb: float,
                 affinity: tuple[int, ...] | None = None, poll_s: float = 0.05) -> ChildOutcome:
    """Call ``fn(*args)`` in a fresh child; never raises for anything the child does.

    ``memory_cap_mb`` bounds the child's RSS growth over its start: past it the
    child is killed and the outcome is ``oom``.  ``timeout_s`` bounds wall time.
    """
    ctx = _get_context()
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_main, args=(child_conn, fn, args, affinity), daemon=True)
    started = time.monotonic()
    process.start()
    child_conn.close()
    baseline_rss: int | None = None
    try:
        proc = psutil.Process(process.pid)
    except psutil.Error:
        proc = None
    try:
        while True:
            elapsed = time.monotonic() - started
            if parent_conn.poll(poll_s):
                try:
                    kind, payload = parent_conn.recv()
                except EOFError:
                    break
                if kind == "started":
                    baseline_rss = int(payload)
                    continue
                process.join(timeout=5)
                if kind == "ok":
                    return ChildOutcome(True, payload, "ok", "", elapsed)
                return ChildOutcome(False, None, kind, str(payload), elapsed)
            if not process.is_alive() and not parent_conn.poll(0):
                break
            if elapsed > timeout_s:
                _kill(process)
                return ChildOutcome(False, None, "timeout", f"measurement exceeded the {timeout_s:g} s timeout", elapsed)
            if proc is not None and baseline_rss is not None:
                try:
                    growth_mb = (proc.memory_info().rss - baseline_rss) / 2**20
                except psutil.Error:
                    growth_mb = 0.0
                if growth_mb > memory_cap_mb:
                    _kill(process)
                    return ChildOutcome(False, None, "oom",
                                        f"out of memory: child grew by {growth_mb:.0f} MB, over the {memory_cap_mb:g} MB cap",
                                        elapsed)
        process.join(timeout=5)
        code = process.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (the kernel's out-of-memory killer sends SIGKILL)" if -code == signal.SIGKILL else ""
            status = "oom" if -code == signal.SIGKILL else "crashed"
            return ChildOutcome(False, None, status, f"child killed by {name}{hint}", time.monotonic() - started)
        return ChildOutcome(False, None, "crashed", f"child exited with code {code} without a result",
                            time.monotonic() - started)
    finally:
        if process.is_alive():
            _kill(process)
        parent_conn.close()


def _kill(process: Any) -> None:
    try:
        process.kill()
    except (OSError, AttributeError):
        pass
    process.join(timeout=5)
