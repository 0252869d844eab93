"""A GPU is its specification: what the cost model reads to predict a GPU it never saw.

NeuSight's ``device_configs/*.json`` (``Num_Sm``, ``Mem_Bw`` …) and our own keys (``sms``,
``bandwidth_gbs`` …) are both accepted; every field is checked, and a wrong one is named.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

_NEUSIGHT_KEYS = {"Device": "name", "Dev_Mem": "memory_gb", "Mem_Bw": "bandwidth_gbs", "Num_Sm": "sms",
                  "Core_Per_SM": "cores_per_sm", "Freq": "clock_mhz", "SingleFLOPs": "fp32_gflops", "L2Cache": "l2_mb"}


class GpuSpecError(ValueError):
    """A GPU specification is missing a field, or a field is not a positive number."""


@dataclass(frozen=True)
class GpuSpec:
    name: str
    memory_gb: float
    bandwidth_gbs: float
    sms: int
    cores_per_sm: int
    clock_mhz: float
    fp32_gflops: float
    l2_mb: float

    @classmethod
    def from_dict(cls, data: dict) -> "GpuSpec":
        if not isinstance(data, dict):
            raise GpuSpecError("a GPU spec must be a JSON object")
        fields = {_NEUSIGHT_KEYS.get(k, k): v for k, v in data.items()}
        missing = [k for k in cls.__dataclass_fields__ if k not in fields]
        if missing:
            raise GpuSpecError(f"GPU spec is missing {missing} (keys: name, memory_gb, bandwidth_gbs, sms, "
                               "cores_per_sm, clock_mhz, fp32_gflops, l2_mb; or NeuSight's Device, Mem_Bw …)")
        values = {}
        for key in cls.__dataclass_fields__:
            value = fields[key]
            if key == "name":
                if not isinstance(value, str) or not value.strip():
                    raise GpuSpecError("GPU spec name must be a non-empty string")
                values[key] = value.strip()
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise GpuSpecError(f"GPU spec {key} must be a positive number, got {value!r}")
            values[key] = int(value) if key in ("sms", "cores_per_sm") else float(value)
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> "GpuSpec":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise GpuSpecError(f"cannot read GPU spec {path}: {exc}") from None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def chip(self) -> str:
        """The GPU's chip (``NVIDIA A100 80GB PCIe`` → ``A100``): boards of one chip are held out together when
        a predictor is scored on GPUs it never saw."""
        match = re.search(r"\b([A-Z]{1,2}\d{1,4})\b", self.name)
        return match.group(1) if match else self.name

    @property
    def key(self) -> str:
        """The file-name form NeuSight uses (``Tesla T4`` → ``Tesla_T4``)."""
        return self.name.replace(" ", "_")


def load_spec_dir(directory: str | Path) -> dict[str, GpuSpec]:
    """Every valid ``*.json`` spec in ``directory``, by name.  Files that are not one GPU's FP32 spec
    (NeuSight's AMD specs split FP32 into matrix and vector rates; ``*_TP`` describes a tensor-parallel
    pair under the same name) are skipped."""
    specs = {}
    for path in sorted(Path(directory).glob("*.json")):
        if path.stem.endswith("_TP"):
            continue
        try:
            spec = GpuSpec.from_file(path)
        except GpuSpecError:
            continue
        specs[spec.name] = spec
    return specs


def name_key(name: str) -> str:
    """How GPU names compare: ignoring case, and underscores for spaces (``tesla_t4`` is ``Tesla T4``)."""
    return name.lower().replace("_", " ")


def find_spec(specs: dict[str, GpuSpec], name: str) -> GpuSpec:
    """A spec by name (:func:`name_key`); GpuSpecError listing the known names otherwise."""
    norm = {name_key(k): v for k, v in specs.items()}
    found = norm.get(name_key(name))
    if found is None:
        raise GpuSpecError(f"unknown GPU {name!r}; known: {sorted(specs)} (or pass --gpu-spec SPEC.json)")
    return found
