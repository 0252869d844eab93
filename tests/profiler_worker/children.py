"""Functions run in isolated children by the tests (must be importable by the forkserver)."""
from __future__ import annotations

import os
import time


def allocate_mb(megabytes: int) -> dict:
    blocks = [bytearray(2**20) for _ in range(megabytes)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])
    time.sleep(5)
    return {"allocated": len(blocks)}


def sleep_s(seconds: float) -> dict:
    time.sleep(seconds)
    return {"slept": seconds}


def abort() -> dict:
    os.abort()


def raise_value_error() -> dict:
    raise ValueError("model config is broken")


def ok() -> dict:
    return {"answer": 42}
