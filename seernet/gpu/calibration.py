"""A GPU the cost model never saw, calibrated by a few models timed on it.

From its spec alone the cost model is off on some unseen GPUs by a factor that is nearly the same for every
model (leave-one-GPU-out: V100 runs these workloads closer to its peak than any spec-based model expects; T4
and P4 further from it).  One or a few whole models measured on the GPU fix that factor: the calibrated
predictor keeps the kernel model and multiplies each metric by the geometric mean of measured / predicted
over the runs.  ``perfseer fit --gpu-spec SPEC.json --measurements runs.csv`` writes such a predictor.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import clip
from ..loader import ModelSource
from .cost_model import MANIFEST
from .predictor import GpuPredictor
from .specs import GpuSpec

METRICS = ("infer_time_ms", "train_time_ms")
MAX_RUNS = 200
PLAUSIBLE_SCALE = (0.1, 10.0)  # further off than this, the spec or the units are wrong, not the model


class GpuCalibrationError(ValueError):
    """The measured runs cannot calibrate the predictor (none given, bad values, or implausibly far off)."""


@dataclass(frozen=True)
class MeasuredRun:
    source: ModelSource
    batch_size: int | None = None
    dims: dict[str, int] = field(default_factory=dict)
    measured: dict[str, float] = field(default_factory=dict)  # metric → ms on the GPU


def calibrate_gpu(predictor: GpuPredictor, gpu: GpuSpec, runs: list[MeasuredRun]) -> tuple[GpuPredictor, dict]:
    """A copy of ``predictor`` that knows ``gpu`` by name and scales its predictions by the measured runs,
    and a report (per metric: scale, runs, the spread of the per-run ratios)."""
    if not runs:
        raise GpuCalibrationError("no measured runs: give at least one model timed on the GPU")
    if len(runs) > MAX_RUNS:
        raise GpuCalibrationError(f"{len(runs)} runs, over the limit of {MAX_RUNS}")
    raw = GpuPredictor(predictor.model, predictor.specs, predictor.backward,
                       {k: v for k, v in predictor.manifest.items() if k != "calibration"})
    logs: dict[str, list[float]] = {m: [] for m in METRICS}
    for index, run in enumerate(runs):
        if not any(m in run.measured for m in METRICS):
            raise GpuCalibrationError(f"run {index + 1} has no measured {' or '.join(METRICS)}")
        predicted = raw.predict(run.source, gpu, run.batch_size, run.dims)
        for metric, value in run.measured.items():
            if metric not in METRICS:
                raise GpuCalibrationError(f"run {index + 1}: unknown metric {clip(metric, 40)!r}; use {METRICS}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise GpuCalibrationError(f"run {index + 1}: {metric} must be a positive number of ms, got {value!r}")
            logs[metric].append(math.log(value / predicted[metric]))
    report = {}
    for metric, values in logs.items():
        if not values:
            continue
        scale = math.exp(sum(values) / len(values))
        if not PLAUSIBLE_SCALE[0] <= scale <= PLAUSIBLE_SCALE[1]:
            raise GpuCalibrationError(f"measured {metric} is {scale:.3g}× the prediction: check the units (ms) and "
                                      f"that the spec describes the GPU the runs were timed on")
        report[metric] = {"scale": scale, "runs": len(values),
                          "ratio_min": math.exp(min(values)), "ratio_max": math.exp(max(values))}
    for metric in METRICS:  # a metric never measured takes the other's scale: the GPU's factor is shared
        if metric not in report:
            other = next(iter(report.values()))
            report[metric] = {**other, "runs": 0, "from": next(iter(report))}
    manifest = {**predictor.manifest, "gpus": {**predictor.manifest.get("gpus", {}), gpu.name: gpu.to_dict()},
                "calibration": {**predictor.manifest.get("calibration", {}), gpu.name: report}}
    return GpuPredictor(predictor.model, {**predictor.specs, gpu.name: gpu}, predictor.backward, manifest), report


def save_calibrated(predictor: GpuPredictor, source_dir: str | Path, directory: str | Path, name: str) -> Path:
    """Write ``predictor`` (calibrated from the one in ``source_dir``) as a servable directory."""
    from ..predictor import manifest_version

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "kernels.safetensors"
    if Path(source_dir).resolve() != directory.resolve():
        shutil.copyfile(Path(source_dir) / "kernels.safetensors", weights)
    manifest = {**predictor.manifest, "name": name}
    manifest.pop("version", None)
    manifest["version"] = manifest_version(manifest, [weights])
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return directory


def read_runs_csv(path: str | Path) -> list[MeasuredRun]:
    """Runs from a CSV: ``onnx`` (a path, relative to the CSV), optional ``batch_size`` and ``dims``
    (``seq=512 heads=16``), and ``infer_time_ms`` and/or ``train_time_ms`` (ms measured on the GPU)."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GpuCalibrationError(f"cannot read {path}: {exc}") from None
    if not rows or "onnx" not in rows[0]:
        raise GpuCalibrationError(f"{path}: needs a header with 'onnx' and infer_time_ms and/or train_time_ms")
    runs = []
    for line, row in enumerate(rows, start=2):
        try:
            batch = int(row["batch_size"]) if row.get("batch_size") else None
            dims = {k: int(v) for k, v in (item.split("=", 1) for item in (row.get("dims") or "").split())}
            measured = {m: float(row[m]) for m in METRICS if row.get(m)}
        except ValueError as exc:
            raise GpuCalibrationError(f"{path}:{line}: {exc}") from None
        model_path = Path(row["onnx"]) if Path(row["onnx"]).is_absolute() else path.parent / row["onnx"]
        if not model_path.is_file():
            raise GpuCalibrationError(f"{path}:{line}: no ONNX file {clip(str(model_path), 120)}")
        runs.append(MeasuredRun(str(model_path), batch, dims, measured))
    return runs
