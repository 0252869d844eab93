"""The shipped GPU predictor: the kernel cost model, the GPUs it knows by name, and the backward factors.

``infer_time_ms`` is the sum of the model's kernels (one forward pass, as NeuSight's ``inf`` runs);
``train_time_ms`` adds the backward pass as a per-family multiple of the forward time, learned from the
training GPUs' traced training runs (NeuSight's ``train`` ``e2e_latency``: forward + backward).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..settings import Limits
from .cost_model import MANIFEST, KernelCostModel
from .onnx_kernels import onnx_kernels
from .specs import GpuSpec, find_spec

DEFAULT_BACKWARD = 2.0  # backward ≈ twice the forward (two GEMMs per forward GEMM) where no trace says otherwise


@dataclass
class GpuPredictor:
    model: KernelCostModel
    specs: dict[str, GpuSpec]
    backward: dict[str, float]
    manifest: dict

    @classmethod
    def load(cls, directory: str | Path) -> "GpuPredictor":
        directory = Path(directory)
        manifest = json.loads((directory / MANIFEST).read_text())
        specs = {name: GpuSpec.from_dict(d) for name, d in manifest["gpus"].items()}
        return cls(KernelCostModel.load(directory), specs, dict(manifest.get("backward", {})), manifest)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", "gpu"))

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", ""))

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.manifest.get("metrics", ("infer_time_ms", "train_time_ms")))

    @property
    def device_key(self) -> str:
        return "gpu:" + ",".join(sorted(self.manifest.get("trained_on", [])))

    @property
    def members(self) -> list:
        return [self.model]

    def spec(self, name: str) -> GpuSpec:
        return find_spec(self.specs, name)

    @property
    def calibration(self) -> dict[str, dict]:
        """GPU name → per metric the scale fitted to runs measured on it (``seernet.gpu.calibration``)."""
        return dict(self.manifest.get("calibration", {}))

    def scales(self, gpu: GpuSpec) -> dict[str, float]:
        """The calibrated scale of each metric on ``gpu``: 1 unless runs were measured on a GPU of this very spec."""
        fitted = self.calibration.get(gpu.name)
        if not fitted or self.specs.get(gpu.name) != gpu:
            return {m: 1.0 for m in self.metrics}
        return {m: float(fitted.get(m, {}).get("scale", 1.0)) for m in self.metrics}

    def predict(self, source, gpu: GpuSpec, batch_size: int | None = None, dims: dict[str, int] | None = None,
                top: int = 0, limits: Limits | None = None) -> dict:
        """``infer_time_ms`` and ``train_time_ms`` of ``source`` on ``gpu``; with ``top``, the costliest kernels."""
        kernels, batch = onnx_kernels(source, batch_size, dims, limits)
        raw = self.model.predict_ms([k.kernel for k in kernels], gpu) if kernels else np.zeros(0)
        backward = np.array([self.backward.get(k.kernel.family, DEFAULT_BACKWARD) for k in kernels])
        scales = self.scales(gpu)
        times = raw * scales.get("infer_time_ms", 1.0)
        train = float((raw * (1.0 + backward)).sum()) * scales.get("train_time_ms", 1.0)
        result = {"gpu": gpu.name, "batch_size": batch, "infer_time_ms": float(times.sum()),
                  "train_time_ms": train, "kernels": len(kernels), "calibrated": any(v != 1.0 for v in scales.values())}
        if top:
            order = np.argsort(-times)[:top]
            total = float(times.sum()) or 1.0
            result["operators"] = [{"node": kernels[i].node, "op_type": kernels[i].op_type,
                                    "family": kernels[i].kernel.family, "infer_time_ms": float(times[i]),
                                    "share": float(times[i]) / total, "fused": list(kernels[i].fused)}
                                   for i in order]
        return result
