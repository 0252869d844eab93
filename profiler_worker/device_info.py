"""The device descriptor that travels with every measurement."""
from __future__ import annotations

import os
import platform
import socket
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_ISA_LEVELS = (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx"), ("sse4_2", "sse4"))


@lru_cache(maxsize=1)
def cpu_isa() -> str:
    """The widest vector instruction set the CPU has (``avx512``, ``avx2`` …; the machine's arch elsewhere).

    Two VMs can report the same model name ("AMD EPYC") and run these models 2.2× apart (measured: ResNet-50
    at batch 1, 89 ms on the dataset's machine, 41 ms on one with AVX-512): the name alone does not say which
    CPU a predictor was measured on."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return next((name for flag, name in _ISA_LEVELS if flag in flags), platform.machine())
    except OSError:
        pass
    return platform.machine()


def cpu_identity() -> str:
    """The CPU as device keys name it: model and vector ISA (``AMD EPYC:avx512``)."""
    return f"{cpu_model()}:{cpu_isa()}"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("torch", "onnxruntime", "onnx", "numpy"):
        try:
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", "?"))
        except ImportError:
            continue
    return versions


def gpu_descriptor(index: int) -> dict:
    """Name, driver and memory of ``cuda:<index>`` through NVML; raises if NVML is unavailable."""
    import pynvml  # nvidia-ml-py

    from .backend import nvml_index, nvml_text

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(nvml_index(index))
    return {
        "gpu_name": nvml_text(pynvml.nvmlDeviceGetName(handle)),
        "gpu_driver": str(pynvml.nvmlSystemGetDriverVersion()),
        "gpu_memory_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20,
    }


def describe_device(device: str, threads: int, affinity: tuple[int, ...] | None = None,
                    graph_optimization: str = "all") -> dict:
    """Everything needed to tell two measurement setups apart: the machine, and how the runtime runs on it."""
    info = {
        "device": device,
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_isa": cpu_isa(),
        "cpu_cores": os.cpu_count() or 1,
        "threads": threads,
        "graph_optimization": graph_optimization,
        "cpu_affinity": list(affinity) if affinity else None,
        "os": platform.platform(),
        "libraries": library_versions(),
    }
    if device.startswith("cuda"):
        from .backend import cuda_index

        info.update(gpu_descriptor(cuda_index(device)))
    return info


def device_key(descriptor: dict) -> str:
    """A short stable name for the measuring setup: predictors are trained per device key.

    ``cpu:MODEL:ISA:Nt`` (``0t``: the runtime's default thread count, all cores; rows measured before the ISA
    was recorded have ``cpu:MODEL:Nt``), with ``:opt-LEVEL`` when onnxruntime's graph optimisation is not its
    default; ``gpu:NAME`` on a GPU."""
    if str(descriptor["device"]).startswith("cuda"):
        return f"gpu:{descriptor.get('gpu_name', 'unknown')}"
    level = descriptor.get("graph_optimization", "all")
    isa = f":{descriptor['cpu_isa']}" if descriptor.get("cpu_isa") else ""
    return f"cpu:{descriptor['cpu_model']}{isa}:{descriptor['threads']}t" + ("" if level == "all" else f":opt-{level}")
