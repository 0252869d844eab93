"""One GPU kernel described the same way whatever its source (a measurement, a trace, an ONNX operator).

Families, as NeuSight measured them: ``gemm`` (bmm / linear: B, M, N, K), ``conv`` (B, C_in, C_out, kernel,
size, stride, padding), ``elementwise`` (add, mul, div, pow, relu, gelu, tanh on B×H elements; ``binary``
when two tensors are read), ``softmax`` and ``layernorm`` (B rows of H).  FP32 throughout.
"""
from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .specs import GpuSpec

FAMILIES = ("gemm", "conv", "elementwise", "softmax", "layernorm")
_ELEMENTWISE = {"add": True, "mul": True, "div": True, "pow": True, "addu": False, "mulu": False, "divu": False,
                "powu": False, "relu": False, "gelu": False, "tanh": False}
_FLOPS_PER_ELEMENT = {"gelu": 8.0, "tanh": 4.0, "pow": 4.0, "powu": 4.0}
LAUNCH_FLOOR_MS = 0.004  # no kernel is faster than its launch: the roofline bound gets this floor
GEMM_TILE = 64


@dataclass(frozen=True)
class Kernel:
    family: str
    op: str  # the measured op name (bmm, linear, add, …)
    dims: tuple[float, ...]  # gemm: B, M, N, K; conv: B, Cin, Cout, k, size, stride, pad; others: B, H
    flops: float
    bytes: float

    @classmethod
    def gemm(cls, b: float, m: float, n: float, k: float, op: str = "bmm") -> "Kernel":
        return cls("gemm", op, (b, m, n, k), 2.0 * b * m * n * k, 4.0 * b * (m * k + k * n + m * n))

    @classmethod
    def conv(cls, b: float, cin: float, cout: float, kernel: float, size: float, stride: float,
             pad: float) -> "Kernel":
        out = max(1.0, math.floor((size + 2 * pad - kernel) / stride) + 1)
        flops = 2.0 * b * cout * out * out * cin * kernel * kernel
        nbytes = 4.0 * (b * cin * size * size + cout * cin * kernel * kernel + b * cout * out * out)
        return cls("conv", "conv", (b, cin, cout, kernel, size, stride, pad), flops, nbytes)

    @classmethod
    def rows(cls, family: str, op: str, b: float, h: float) -> "Kernel":
        n = b * h
        if family == "elementwise":
            tensors = 3.0 if _ELEMENTWISE.get(op, True) else 2.0
            return cls(family, op, (b, h), _FLOPS_PER_ELEMENT.get(op, 1.0) * n, 4.0 * tensors * n)
        per_element = 5.0 if family == "softmax" else 8.0
        return cls(family, op, (b, h), per_element * n, 4.0 * 2.0 * n + (8.0 * h if family == "layernorm" else 0.0))

    def roofline_ms(self, gpu: GpuSpec) -> float:
        """The time the GPU's peak FLOP rate or bandwidth allows, plus a launch floor."""
        return max(self.flops / (gpu.fp32_gflops * 1e6), self.bytes / (gpu.bandwidth_gbs * 1e6)) + LAUNCH_FLOOR_MS

    def waves(self, gpu: GpuSpec) -> float:
        """How many rounds of work the SMs need: GEMM output tiles of 64×64 (per batch), or 128-thread blocks of
        four elements for the rest — the quantisation NeuSight models with tiles and waves."""
        if self.family == "gemm":
            b, m, n, _ = self.dims
            tiles = b * math.ceil(m / GEMM_TILE) * math.ceil(n / GEMM_TILE)
        elif self.family == "conv":
            b, _, cout, _, size, stride, pad = self.dims
            out = max(1.0, math.floor((size + 2 * pad - self.dims[3]) / stride) + 1)
            tiles = math.ceil(b * out * out / GEMM_TILE) * math.ceil(cout / GEMM_TILE)
        else:
            tiles = math.ceil(self.dims[0] * self.dims[1] / 512)
        return max(1.0, tiles / gpu.sms)


def features(kernel: Kernel, gpu: GpuSpec) -> list[float]:
    """What the cost model sees: the kernel's size, its roofline terms on this GPU, waves, and the GPU itself."""
    compute_ms = kernel.flops / (gpu.fp32_gflops * 1e6)
    memory_ms = kernel.bytes / (gpu.bandwidth_gbs * 1e6)
    waves = kernel.waves(gpu)
    dims = list(kernel.dims) + [0.0] * (7 - len(kernel.dims))
    return [
        math.log1p(kernel.flops), math.log1p(kernel.bytes), math.log(kernel.flops / kernel.bytes + 1e-9),
        math.log(compute_ms + 1e-9), math.log(memory_ms + 1e-9), math.log(kernel.roofline_ms(gpu)),
        math.log(waves), waves - math.floor(waves) if waves > 1 else waves,
        *[math.log1p(d) for d in dims],
        math.log(gpu.fp32_gflops), math.log(gpu.bandwidth_gbs), math.log(gpu.sms), math.log(gpu.l2_mb),
        math.log(gpu.clock_mhz), math.log(gpu.fp32_gflops / gpu.bandwidth_gbs),
        math.log(max(kernel.bytes / 1e6, 1e-6) / gpu.l2_mb),  # working set vs L2
    ]


@dataclass(frozen=True)
class Measurement:
    kernel: Kernel
    gpu: str
    latency_ms: float


def _kernel_from_row(op: str, row: dict) -> Kernel | None:
    f = lambda k: float(row[k])  # noqa: E731
    try:
        if op in ("bmm", "linear"):
            return Kernel.gemm(f("B"), f("M"), f("N"), f("K"), op)
        if op == "conv":
            return Kernel.conv(f("B"), f("Input_Channel"), f("Output_Channel"), f("Kernel_Szie"), f("Input_Size"),
                               f("Stride"), f("Padding"))
        family = "softmax" if op == "softmax" else "layernorm" if op == "ln" else "elementwise"
        return Kernel.rows(family, op, f("B"), f("H"))
    except (KeyError, ValueError):
        return None


_TEST_FILES = {"bmm": "bmm", "linear": "linear", "elem": None, "ln": "ln", "softmax": "softmax"}  # vec, habitat: copies


def _rows(path: Path):
    with gzip.open(path, "rt", newline="") as f:
        yield from csv.DictReader(f)


def _measurement(op: str, gpu: str, row: dict) -> Measurement | None:
    kernel = _kernel_from_row(op, row)
    try:
        latency = float(row.get("Latency") or "nan")
    except ValueError:
        return None
    if kernel is None or not latency > 0 or kernel.flops <= 0:
        return None
    return Measurement(kernel, gpu, latency)


def load_measurements(root: str | Path, gpus: Iterable[str] | None = None,
                      with_test_kernels: bool = True) -> list[Measurement]:
    """NeuSight's ``kernels/<op>/<GPU>.csv.gz`` as measurements (GPU by file name: ``Tesla_T4``), and with
    ``with_test_kernels`` its ``kernels_test/`` too: the GEMM, element-wise, softmax and LayerNorm kernels of
    real transformer layers (aligned sizes, vocabulary-wide heads) that the random sweep rarely draws.  Neither
    holds a whole-model label: a GPU's whole models stay unseen when its kernels are left out."""
    wanted = set(gpus) if gpus is not None else None
    out = []
    for path in sorted(Path(root, "kernels").glob("*/*.csv.gz")):
        op, gpu = path.parent.name, path.name.removesuffix(".csv.gz")
        if wanted is not None and gpu not in wanted:
            continue
        out.extend(m for m in (_measurement(op, gpu, row) for row in _rows(path)) if m is not None)
    if with_test_kernels:
        for stem, op in _TEST_FILES.items():
            path = Path(root, "kernels_test", f"{stem}.csv.gz")
            if not path.exists():
                continue
            for row in _rows(path):
                gpu = str(row.get("Device", "")).replace(" ", "_")
                if wanted is not None and gpu not in wanted:
                    continue
                measurement = _measurement(op or str(row.get("OPName", "")), gpu, row)
                if measurement is not None:
                    out.append(measurement)
    return out


def feature_matrix(kernels: Iterable[Kernel], gpus: Iterable[GpuSpec]) -> np.ndarray:
    return np.array([features(k, g) for k, g in zip(kernels, gpus)], dtype=np.float64)
