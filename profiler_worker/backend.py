"""Pick the device a worker really measures on, falling back to CPU with a clear message."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def cuda_unavailable_reason(device: str) -> str | None:
    """Why ``device`` (``cuda`` or ``cuda:N``) cannot be used here, or None if it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (CPU build or no NVIDIA driver)"
    index = int(device.split(":", 1)[1]) if ":" in device else 0
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
