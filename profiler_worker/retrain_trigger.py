"""When the writer has added enough rows, launch ``perfseer retrain`` as its own process.

The worker never imports the trainer or the server: retraining runs in a
separate process (so it never slows the writer), and the promotion decision
is made there, by ``seernet.repository``.
"""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence


class RetrainTrigger:
    """Counts rows the writer adds; past ``threshold`` it launches one retrain at a time."""

    def __init__(self, threshold: int, launch: Callable[[], object]) -> None:
        self.threshold = threshold
        self.launch = launch
        self.pending = 0
        self._lock = threading.Lock()
        self._running: object | None = None

    def __call__(self, rows: int) -> bool:
        with self._lock:
            self.pending += rows
            busy = self._running is not None and getattr(self._running, "poll", lambda: 0)() is None
            if self.pending < self.threshold or busy:
                return False
            self.pending = 0
            self._running = self.launch()
            return True


def launch_retrain_process(dataset: Path, predictors: Path, name: str, extra_args: Sequence[str] = ()) -> subprocess.Popen:
    """A separate process, so training never slows the writer or the server."""
    return subprocess.Popen([sys.executable, "-m", "perfseer.cli", "retrain", "--dataset", str(dataset),
                             "--predictors", str(predictors), "--name", name, *extra_args])
