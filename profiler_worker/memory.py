"""Peak-memory probes: process RSS high-water mark on Linux, CUDA allocator and NVML on GPUs."""
from __future__ import annotations

import threading
import time


def _status_kb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024.0


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux ≥ 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    return _status_kb("VmHWM") / 1024.0


class RssPeakMeter:
    """Peak RSS growth of this process across a ``with`` block.

    Why growth: the measuring child already holds the interpreter and libraries;
    what the model costs is what it adds on top.
    """

    def __enter__(self) -> "RssPeakMeter":
        self.exact = reset_peak_rss()
        self.baseline_mb = rss_mb()
        self.peak_growth_mb = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        peak = peak_rss_mb() if self.exact else rss_mb()
        self.peak_growth_mb = max(0.0, peak - self.baseline_mb)


class NvmlSampler:
    """Samples GPU SM utilisation and used memory in a thread while a timed loop runs."""

    def __init__(self, gpu_index: int, interval_s: float = 0.005) -> None:
        """``gpu_index`` is torch's (``cuda:N``); it is mapped to NVML's numbering by UUID."""
        import pynvml

        from .backend import nvml_index

        self._nvml = pynvml
        pynvml.nvmlInit()
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(nvml_index(gpu_index))
        self._interval = interval_s
        self._stop = threading.Event()
        self.util: list[float] = []
        self.used_mb: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.baseline_used_mb = self._used_mb()

    def _used_mb(self) -> float:
        return self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.util.append(float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))
            self.used_mb.append(self._used_mb())
            time.sleep(self._interval)

    def __enter__(self) -> "NvmlSampler":
        """Starts sampling; the memory baseline was taken at construction (before the model was loaded)."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean_util(self) -> float:
        return sum(self.util) / len(self.util) if self.util else 0.0

    @property
    def peak_growth_mb(self) -> float:
        return max(self.used_mb, default=self.baseline_used_mb) - self.baseline_used_mb
