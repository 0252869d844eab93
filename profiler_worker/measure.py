"""Measure one job: export if needed, then inference and training each in its own child."""
from __future__ import annotations

import socket

from seernet.export import export_config

from .device_info import describe_device, device_key
from .isolation import run_isolated
from .job import METRICS, ProfileJob, ProfileResult
from .probes import measure_inference, measure_training
from .settings import ProfileSettings


def _export_in_child(config_json: str) -> dict:
    from seernet.spaces import ModelConfig

    return {"onnx": export_config(ModelConfig.from_json(config_json))}


def _keep_stripped(onnx_bytes: bytes, job: ProfileJob, settings: ProfileSettings) -> None:
    """Save the weight-stripped export so training builds graphs without exporting again."""
    if not settings.onnx_cache_dir or job.config is None:
        return
    from seernet.graph_cache import onnx_cache_path, store_stripped

    if not onnx_cache_path(settings.onnx_cache_dir, job.config).exists():
        store_stripped(job.config, onnx_bytes, settings.onnx_cache_dir)


def export_isolated(config_json: str, settings: ProfileSettings, affinity: tuple[int, ...] | None = None):
    """Export a config to ONNX in a child process (on ``affinity``, so it need not share the measuring core)."""
    return run_isolated(_export_in_child, (config_json,), timeout_s=settings.timeout_s,
                        memory_cap_mb=settings.memory_cap_mb, affinity=affinity or settings.cpu_affinity)


def measure_job(job: ProfileJob, settings: ProfileSettings, worker: str = "",
                exported: bytes | None = None) -> ProfileResult:
    """Never raises for a bad model: every failure becomes a recorded status and reason.

    ``exported``: the config's ONNX, already exported elsewhere (the dataset build prefetches it).
    """
    descriptor = describe_device(settings.device, settings.threads, settings.cpu_affinity, settings.graph_optimization)
    metrics: dict[str, float | None] = {m: None for m in METRICS}
    stats: dict = {}
    operators: dict = {}
    failures: list[str] = []
    limits = {"timeout_s": settings.timeout_s, "memory_cap_mb": settings.memory_cap_mb, "affinity": settings.cpu_affinity}

    onnx_bytes = job.onnx_bytes if job.onnx_bytes is not None else exported
    if onnx_bytes is None and "infer" in settings.modes:
        outcome = export_isolated(job.config.to_json(), settings)
        if outcome.ok:
            onnx_bytes = outcome.result["onnx"]
        else:
            failures.append(f"export {outcome.status}: {outcome.reason}")
    if onnx_bytes is not None and job.config is not None:
        _keep_stripped(onnx_bytes, job, settings)
    if onnx_bytes is not None and "infer" in settings.modes:
        outcome = run_isolated(measure_inference, (onnx_bytes, job.batch_size, settings), **limits)
        if outcome.ok:
            stats["infer"] = outcome.result.pop("infer_stats")
            operators = outcome.result.pop("infer_operators", {}) or {}
            metrics.update(outcome.result)
        else:
            failures.append(f"infer {outcome.status}: {outcome.reason}")
    if "train" in settings.modes:
        if job.config is None:
            stats["train"] = {"skipped": "training is measured only for model-space configs"}
        else:
            outcome = run_isolated(measure_training, (job.config.to_json(), settings), **limits)
            if outcome.ok:
                stats["train"] = outcome.result.pop("train_stats")
                metrics.update({k: v for k, v in outcome.result.items() if k in METRICS})
            else:
                failures.append(f"train {outcome.status}: {outcome.reason}")

    measured = [v for v in metrics.values() if v is not None]
    status = "failed" if not measured else ("partial" if failures else "ok")
    return ProfileResult(
        job_id=job.job_id,
        status=status,
        reason="; ".join(failures),
        family=job.family,
        config_json=job.config.to_json() if job.config else "",
        config_id=job.model_key,
        batch_size=job.batch_size,
        input_size=job.config.input_size if job.config else None,
        device=settings.device,
        device_key=device_key(descriptor),
        metrics=metrics,
        stats=stats,
        descriptor=descriptor,
        settings=settings.describe(),
        worker=worker or socket.gethostname(),
        operators=operators,
    )
