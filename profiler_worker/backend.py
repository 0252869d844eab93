"""Pick the device a worker really measures on, falling back to CPU with a clear message."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

log = logging.getLogger(__name__)


def cuda_unavailable_reason(device: str) -> str | None:
    """Why ``device`` (``cuda`` or ``cuda:N``) cannot be used here, or None if it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (CPU build or no NVIDIA driver)"
    index = cuda_index(device)
    if index >= torch.cuda.device_count():
        return f"{device} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # NVML missing or driver mismatch
        return f"NVML is not usable ({exc}); SM utilisation cannot be sampled"
    return None


def resolve_device(requested: str, allow_fallback: bool = True) -> str:
    """``requested`` if usable; otherwise ``cpu`` with a warning, or ``RuntimeError`` when fallback is off."""
    if requested == "cpu":
        return "cpu"
    if not requested.startswith("cuda"):
        raise ValueError(f"unknown device {requested!r}; use cpu, cuda or cuda:N")
    reason = cuda_unavailable_reason(requested)
    if reason is None:
        return requested
    if not allow_fallback:
        raise RuntimeError(f"cannot profile on {requested}: {reason}")
    log.warning("cannot profile on %s: %s; falling back to CPU", requested, reason)
    return "cpu"


def cuda_index(device: str) -> int:
    """``cuda`` → 0, ``cuda:N`` → N."""
    return int(device.split(":", 1)[1]) if ":" in device else 0


def nvml_text(value: str | bytes) -> str:
    """NVML strings: bytes in older nvidia-ml-py releases, str in newer ones."""
    return value.decode() if isinstance(value, bytes) else str(value)


def match_gpu_uuid(wanted: str, nvml_uuids: Sequence[str | bytes]) -> int | None:
    """Index in ``nvml_uuids`` of the GPU whose UUID is (or, as CUDA_VISIBLE_DEVICES allows, starts
    with) ``wanted``; None when no GPU or more than one matches.  torch writes UUIDs bare, NVML and
    CUDA_VISIBLE_DEVICES with a ``GPU-`` prefix: both forms compare equal here."""
    def bare(uuid: str | bytes) -> str:
        return nvml_text(uuid).strip().lower().removeprefix("gpu-")

    key = bare(wanted)
    if not key:
        return None
    found = [i for i, uuid in enumerate(nvml_uuids) if bare(uuid).startswith(key)]
    return found[0] if len(found) == 1 else None


def nvml_index(index: int) -> int:
    """NVML's index of the GPU torch calls ``cuda:<index>``.

    Why this is needed: NVML numbers every GPU of the machine in PCI order and ignores
    CUDA_VISIBLE_DEVICES, while CUDA numbers only the visible GPUs (fastest first unless
    CUDA_DEVICE_ORDER=PCI_BUS_ID).  Sampling NVML index ``index`` would then read another
    GPU's utilisation and memory.  The UUID is what both agree on: taken from torch where CUDA
    is already initialised (the measuring child), else from CUDA_VISIBLE_DEVICES (a parent must
    not create a CUDA context before its children fork).
    """
    import pynvml
    import torch

    pynvml.nvmlInit()
    uuids = [pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())]
    if torch.cuda.is_initialized():
        wanted = str(torch.cuda.get_device_properties(index).uuid)
    else:
        tokens = [t.strip() for t in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if t.strip()]
        if index >= len(tokens):
            return index
        if tokens[index].isdigit():
            return int(tokens[index])
        wanted = tokens[index]
    found = match_gpu_uuid(wanted, uuids)
    if found is None:
        log.warning("no unique NVML GPU has UUID %s (cuda:%d); NVML samples GPU %d, which may be another one",
                    wanted, index, index)
        return index
    return found
