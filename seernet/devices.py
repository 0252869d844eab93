"""Which predictor answers for which device: one rule for the service and the CLI.

A device key (``profiler_worker.device_info.device_key``) is ``cpu:MODEL[:ISA]:Nt[:opt-LEVEL]`` or
``gpu:NAME``.  A request names a device by predictor name, by exact key, or by a key prefix (``cpu``,
``cpu:AMD EPYC``); a machine matches a CPU predictor when the key's CPU part (model and ISA) is its own.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

_RUN_SETTINGS = re.compile(r":\d+t(:opt-\w+)?$")  # threads and graph-optimisation level, at the key's end


def cpu_of_key(device_key: str) -> str | None:
    """The CPU a ``cpu:`` key was measured on, as ``cpu_identity()`` names it (``AMD EPYC:avx512``), else None."""
    if not device_key.startswith("cpu:"):
        return None
    return _RUN_SETTINGS.sub("", device_key[len("cpu:"):])


def resolve_device(keys: Mapping[str, str], device: str) -> str | None:
    """The name, among ``keys`` (predictor name → device key), that answers for ``device``: the predictor of
    that name, else the one with that exact key, else the first (by name) whose key starts with ``device:``."""
    if device in keys:
        return device
    names = sorted(keys)
    exact = [n for n in names if keys[n] == device]
    prefixed = [n for n in names if keys[n].startswith(device + ":")]
    return (exact or prefixed or [None])[0]


def measured_at(device_key: str, threads: int) -> bool:
    """Whether ``device_key`` was measured with ``threads`` threads and the default graph optimisation."""
    return device_key.endswith(f":{threads}t")


def machine_predictor(keys: Mapping[str, str], cpu: str, threads: int = 1) -> str | None:
    """The predictor measured on this machine's CPU (``cpu``: model and ISA), preferring one measured with
    ``threads`` threads and the default graph optimisation; None when none was measured on it."""
    mine = sorted(n for n, key in keys.items() if cpu_of_key(key) == cpu)
    preferred = [n for n in mine if measured_at(keys[n], threads)]
    return (preferred or mine or [None])[0]


def predictor_keys(root: Path) -> dict[str, str]:
    """Directory name → device key of every predictor under ``root`` that answers by device key, read from
    manifests only (nothing loaded).  GPU kernel cost models are left out: they answer for a GPU named by its
    spec, as the service keeps them apart; directories without a readable manifest are skipped."""
    return keys_of(predictor_summaries(root))


def keys_of(summaries: list[dict]) -> dict[str, str]:
    """:func:`predictor_keys` from rows :func:`predictor_summaries` already read."""
    return {row["name"]: str(row["device_key"]) for row in summaries
            if "error" not in row and row["kind"] != "gpu-kernels"}


def predictor_summaries(root: Path) -> list[dict]:
    """One line of facts per predictor directory under ``root``, from manifests only: what ``perfseer
    predictors`` lists so a user can see which device each answers for, and where its other metrics come from
    (an operator predictor's ``base`` may have been measured on another machine)."""
    rows = []
    for path in sorted(Path(root).glob("*/manifest.json")):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            rows.append({"name": path.parent.name, "error": f"unreadable manifest: {exc}"})
            continue
        if not isinstance(manifest, dict):
            rows.append({"name": path.parent.name, "error": "unreadable manifest: not a JSON object"})
            continue
        kind = manifest.get("kind") or "seernet"
        row = {"name": path.parent.name, "kind": kind, "version": manifest.get("version", ""),
               "device_key": manifest.get("device_key", ""), "metrics": list(manifest.get("metrics", []))}
        if kind == "gpu-kernels":
            row["gpus"] = sorted(manifest.get("trained_on", []))
        if kind == "operators":  # what it answers itself; a base network answers the rest
            row["own_metrics"] = [manifest.get("operators", {}).get("metric", "infer_time_ms"),
                                  *([manifest["memory_line"]["metric"]] if manifest.get("memory_line") else [])]
        base = manifest.get("base")
        if base:
            try:
                base_manifest = json.loads((path.parent / base / "manifest.json").read_text())
                row["base_device_key"] = base_manifest.get("device_key", "")
            except (OSError, ValueError):
                row["base_device_key"] = "unreadable"
        rows.append(row)
    return rows


__all__ = ["cpu_of_key", "keys_of", "machine_predictor", "measured_at", "predictor_keys", "predictor_summaries",
           "resolve_device"]
